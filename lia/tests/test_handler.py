"""lia.handler: an open chat stream holds no thread of its own (issue #8, memory per stream), and
everything Django and the stream do around it still happens."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished

from conversations import apis
from conversations.models import Conversation, Message
from conversations.tests.conftest import (
    body,
    http_scope,
    open_stream,
    parse_events,
    read_stream,
    read_until,
    stored_statuses,
)
from conversations.tests.scripted import Script
from lia import handler
from lia.asgi import application
from lia.handler import ASGIHandler, RequestThread

pytestmark = pytest.mark.django_db(transaction=True)


# The streams' database threads, the loop's default executor, and request threads kept for reuse.
SHARED_POOLS = ("lia-db", "asyncio_", "lia-request")


def request_threads() -> set[str]:
    """Live threads other than the shared pools: what requests start for themselves."""
    return {t.name for t in threading.enumerate() if t.is_alive() and not t.name.startswith(SHARED_POOLS)}


def kept_request_threads() -> int:
    return sum(t.name.startswith("lia-request") and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def scripted(scripted: Script) -> Script:
    """Replies long enough to be still streaming while a test looks: 30 words, 50 ms apart."""
    return scripted.reply(*[f"w{i} " for i in range(30)], delay=0.05)


async def test_open_streams_hold_no_request_thread(alice, scripted, settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 10
    payload = body("Hi")
    before = request_threads()
    streams = []
    for index in range(6):
        payload["message"] = f"turn {index}"
        streams.append(await open_stream(alice.token, payload))
    for communicator in streams:
        await read_until(communicator, 1)

    for _ in range(50):  # a released thread ends once it has handed back its last call
        if request_threads() <= before:
            break
        await asyncio.sleep(0.02)
    assert request_threads() - before == set()
    assert kept_request_threads() <= RequestThread.KEEP_IDLE  # taken by turns, given back: not one per stream
    assert len(RequestThread._idle) == kept_request_threads()  # all of them idle while the streams stream

    for communicator in streams:
        received = b""
        while b"event: done" not in received:
            received += (await communicator.receive_output(timeout=5)).get("body", b"")
        await communicator.wait(timeout=5)
    statuses = await stored_statuses()
    assert statuses == ["complete"] * 6


def history_scope(token: str) -> dict:
    scope = http_scope(token, b"")
    return {**scope, "method": "GET", "path": "/api/v1/chat/history", "raw_path": b"/api/v1/chat/history"}


async def test_request_started_receivers_run_in_the_request_thread_without_a_hop_of_their_own(alice, monkeypatch):
    """Django's sync request_started receivers would cost every request a thread hop before
    anything else; lia.handler runs them in the request's own thread, first thing."""
    handler = ASGIHandler()  # a new one: Django's test clients reconnect close_old_connections
    ran: list[tuple[str, str]] = []
    monkeypatch.setattr("lia.handler.reset_queries", lambda: ran.append(("reset_queries", thread_name())))
    monkeypatch.setattr("lia.handler.close_old_connections", lambda: ran.append(("close", thread_name())))
    submitted: list[str] = []
    submit = RequestThread.submit

    def counting_submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        inner = getattr(fn, "args", [fn])[-1]  # asgiref submits partial(thread_handler, ..., partial(call))
        submitted.append(getattr(getattr(inner, "func", inner), "__qualname__", repr(inner)[:80]))
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(RequestThread, "submit", counting_submit)

    communicator = ApplicationCommunicator(handler, history_scope(alice.token))
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    assert (await communicator.receive_output(timeout=5))["status"] == 200
    await communicator.receive_output(timeout=5)  # the body
    await communicator.wait(timeout=5)

    assert [name for name, _ in ran] == ["reset_queries", "close"]
    assert all(thread.startswith("lia-request") for _, thread in ran)
    # Django's own sync calls, and no other: the view (after the receivers), rendering DRF's
    # response, closing it.
    assert submitted == ["View.as_view.<locals>.view", "SimpleTemplateResponse.render", "HttpResponseBase.close"]


def thread_name() -> str:
    return threading.current_thread().name


async def test_a_client_gone_while_the_turn_is_written_ahead_leaves_its_reply_interrupted(
    alice, scripted, async_web, monkeypatch, settings
):
    """The client leaves while the chat view is still writing the turn ahead, before the response
    starts. Django drops the view's response; the handler waits for the view and tells the
    response, which stores the reply interrupted, empty, before the request ends, with
    request_finished sent once. (It was left `streaming` until the sweep: it counted against the
    stream cap, and the web client's resend waited CHAT_TURN_WAIT_SECONDS for it.)"""
    written, writing, disconnected = apis.turn_start, threading.Event(), threading.Event()

    def write_ahead(**kwargs: object) -> object:
        writing.set()
        disconnected.wait(5)  # the disconnect lands while the view is in the write-ahead
        return written(**kwargs)

    monkeypatch.setattr(apis, "turn_start", write_ahead)
    abandoning, abandon_dropped = asyncio.Event(), handler._abandon_dropped_response

    async def observed_abandon_dropped() -> None:
        abandoning.set()
        await abandon_dropped()

    monkeypatch.setattr(handler, "_abandon_dropped_response", observed_abandon_dropped)
    settings.CHAT_TURN_WAIT_SECONDS = 60  # a resend that waited would fail the test's timeout
    finished = []

    def on_finished(sender: object, **kwargs: object) -> None:
        finished.append(sender)

    request_finished.connect(on_finished)
    raw = json.dumps(body("first question")).encode()
    communicator = ApplicationCommunicator(application, http_scope(alice.token, raw))
    await communicator.send_input({"type": "http.request", "body": raw, "more_body": False})
    assert await asyncio.to_thread(writing.wait, 5)
    await communicator.send_input({"type": "http.disconnect"})
    await asyncio.wait_for(abandoning.wait(), 5)  # Django has cancelled the request
    disconnected.set()
    await communicator.wait(timeout=5)
    request_finished.disconnect(on_finished)

    assert len(finished) == 1  # request_finished, once
    rows = await sync_to_async(list)(Message.objects.order_by("id").values_list("role", "status", "content"))
    assert rows == [("user", "complete", "first question"), ("assistant", "interrupted", "")]
    assert scripted.calls == []  # the provider was never asked
    conversation_id = str(await sync_to_async(Conversation.objects.values_list("pk", flat=True).get)())

    monkeypatch.setattr(apis, "turn_start", written)
    response, raw_events = await asyncio.wait_for(
        read_stream(async_web, alice, body("again", conversation_id=conversation_id)), 5
    )
    assert response.status_code == 200
    assert parse_events(raw_events)[-1][1] == "done"
