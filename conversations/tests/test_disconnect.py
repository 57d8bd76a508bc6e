"""A client that goes away mid-stream, with a real ASGI `http.disconnect` (the test clients never
send one): the user message and the partial reply stay, marked interrupted (CONTRACT §7.15)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.signals import request_finished
from django.utils.module_loading import import_string

from conversations.models import Message
from conversations.tests.conftest import body, http_scope, open_stream, parse_events, read_until, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)
application = import_string(settings.ASGI_APPLICATION)  # what the server serves: lia.asgi's whole stack


@pytest.mark.parametrize("after_chunks", [0, 1, 3, 9])  # before the first token, first, middle, last - 1
async def test_disconnect_keeps_user_message_and_partial_reply(alice, scripted, after_chunks):
    words = [f"word{i} " for i in range(10)]
    scripted.reply(*words, delay=0.05)
    scripted.steps[-3] = ("sleep", 2.0)  # before the last word: a disconnect at last - 1 lands first
    scripted.closed = asyncio.Event()
    finished = []

    def on_finished(sender: object, **kwargs: object) -> None:
        finished.append(sender)

    request_finished.connect(on_finished)
    communicator = await open_stream(alice.token, body())

    events = await read_until(communicator, after_chunks)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=5)
    request_finished.disconnect(on_finished)

    user_message_id = events[0][2]["message_id"]
    assistant = await wait_for_status(user_message_id + 1, "interrupted")
    assert assistant.role == "assistant"
    # Everything the server produced is stored: at least what the client saw, and a prefix of the reply.
    assert assistant.content == "".join(scripted.produced)
    seen = "".join(data["content"] for _, name, data in events if name == "chunk")
    assert assistant.content.startswith(seen)
    assert "".join(words).startswith(assistant.content)
    assert len(scripted.produced) < len(words)
    user = await sync_to_async(Message.objects.get)(pk=user_message_id)
    assert (user.role, user.content) == ("user", "Hello!")
    # The provider's stream was closed, so generation (and billing) stopped.
    await asyncio.wait_for(scripted.closed.wait(), timeout=2)
    assert len(finished) == 1  # request_finished, once


async def test_a_new_turn_right_after_an_abort_is_accepted_and_ordered(alice, scripted, stream):
    scripted.reply(*[f"w{i} " for i in range(20)], delay=0.05)
    communicator = await open_stream(alice.token, body("first question"))
    events = await read_until(communicator, 2)
    conversation_id = events[0][2]["conversation_id"]
    await communicator.send_input({"type": "http.disconnect"})

    scripted.reply("second ", "answer")
    response, second = await stream(alice, body("regenerate", conversation_id=conversation_id))
    await communicator.wait(timeout=5)

    assert response.status_code == 200
    assert second[-1][1] == "done"
    messages = Message.objects.filter(conversation_id=conversation_id).order_by("created_at", "id")
    transcript = await sync_to_async(list)(messages.values_list("role", "status"))
    assert transcript == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    context, _ = scripted.calls[-1]
    assert context[0].content == "first question"
    assert context[1].content.startswith("w0 w1 ")


async def test_a_client_that_stops_reading_is_let_go(alice, scripted, settings):
    """A client still connected but no longer reading (a phone whose network went silent, a
    stuck tab) fills the connection's buffers, and then the server's send waits (uvicorn waits
    for its buffer to drain): the stream is held at its yield, so neither its time cap nor its
    keep-alives can end it, and it stayed `streaming` until TCP gave up, minutes later, holding
    a slot of its user's stream cap. A send that waits longer than CHAT_SEND_TIMEOUT_SECONDS
    ends the stream as a disconnect does: the reply so far is stored as interrupted and the
    provider's stream is closed."""
    settings.CHAT_SEND_TIMEOUT_SECONDS = 0.5
    words = [f"word{i} " for i in range(40)]
    scripted.reply(*words, delay=0.02)
    scripted.closed = asyncio.Event()
    payload = json.dumps(body()).encode()
    pending = [{"type": "http.request", "body": payload, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # still connected: no disconnect ever comes
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)
        if b"event: chunk" in message.get("body", b""):
            await asyncio.Event().wait()  # the client's window is full: this send never completes

    await asyncio.wait_for(application(http_scope(alice.token, payload), receive, send), timeout=5)

    start = parse_events(sent[1]["body"])[0][2]
    assistant = await wait_for_status(start["message_id"] + 1, "interrupted")
    assert assistant.content.startswith("word0 ")
    assert "".join(words).startswith(assistant.content)
    assert len(assistant.content) < len("".join(words))
    await asyncio.wait_for(scripted.closed.wait(), timeout=2)


async def test_a_disconnect_while_a_send_waits_closes_the_stream_at_once(alice, scripted):
    """RELIABILITY pitfall 3: the client leaves while the server is sending (not while the stream
    waits for the provider), so Django's handler gets the cancellation, and it closes only its
    own wrappers of the stream. The stream itself, parked at its yield, was left to the garbage
    collector: the provider went on generating, and the reply stayed `streaming`, until a
    collection, seconds or minutes later."""
    words = [f"word{i} " for i in range(40)]
    scripted.reply(*words, delay=0.02)
    scripted.closed = asyncio.Event()
    payload = json.dumps(body()).encode()
    pending = [{"type": "http.request", "body": payload, "more_body": False}]
    sending, left = asyncio.Event(), asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            return pending.pop()
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if b"event: chunk" in message.get("body", b""):
            sending.set()
            await asyncio.Event().wait()  # a slow network: the client leaves before this is taken

    app = asyncio.ensure_future(application(http_scope(alice.token, payload), receive, send))
    await asyncio.wait_for(sending.wait(), 5)
    left.set()
    await asyncio.wait_for(app, 5)

    await asyncio.wait_for(scripted.closed.wait(), timeout=1)
    start = parse_events(sent[1]["body"])[0][2]
    assistant = await wait_for_status(start["message_id"] + 1, "interrupted", within=1)
    assert assistant.content.startswith("word0 ")
    assert len(scripted.produced) < len(words)
