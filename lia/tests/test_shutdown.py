"""lia.shutdown: when the server cancels a request on shutdown (daphne does, on SIGTERM), or
asks for every request in flight to end (lia.uvicorn_worker does), the request ends as after a
client disconnect, so an open chat stream stores its partial reply. The same over a real server
and SIGTERM: tests/faults/test_streaming_live.py."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.db import connections

from conversations.models import Message
from conversations.streaming import sse_event
from conversations.tests.conftest import http_scope as stream_scope
from conversations.tests.conftest import parse_events
from lia.handler import ASGIHandler
from lia.shutdown import SHUTDOWN_ERROR, GracefulShutdown


@pytest.fixture
async def close_thread_connections() -> AsyncIterator[None]:
    """The ORM calls made through sync_to_async open connections in asgiref's worker thread;
    close them there, or PostgreSQL can't drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_shutdown_mid_stream_stores_the_partial_reply(alice, fake_llm_providers):
    words = [f"w{i} " for i in range(100)]
    fake_llm_providers.script(chunks=words, delay=0.05)
    payload = json.dumps({"message": "Hi", "provider": "openai", "model": "gpt-4o-mini"}).encode()
    app = GracefulShutdown(ASGIHandler(), grace=5)
    communicator = ApplicationCommunicator(app, stream_scope(alice.token, payload))
    await communicator.send_input({"type": "http.request", "body": payload})
    assert (await communicator.receive_output(timeout=5))["status"] == 200
    received = b""
    while received.count(b"event: chunk") < 2:
        received += (await communicator.receive_output(timeout=5)).get("body", b"")

    communicator.future.cancel()  # what daphne's kill_all_applications does
    # Ends as a finished request: a cancellation raised on would end daphne's wait for the other
    # requests (asyncio.gather stops at the first cancelled one), cutting their connections.
    await asyncio.wait_for(communicator.future, timeout=10)

    assert_ended_with_the_shutdown_error(received, drain(communicator))
    assistant = await sync_to_async(Message.objects.get)(role="assistant")
    assert assistant.status == "interrupted"
    assert assistant.content.startswith("w0 w1 ")
    assert "".join(words).startswith(assistant.content)
    assert fake_llm_providers.wait_for_disconnect(timeout=5)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_disconnect_all_ends_a_stream_as_a_client_disconnect(alice, fake_llm_providers, monkeypatch):
    """What lia.uvicorn_worker calls when uvicorn starts to shut down (uvicorn cancels nothing
    until its graceful timeout): the request ends by itself, its partial reply stored, and the
    client sees the body end."""
    monkeypatch.setattr(GracefulShutdown, "_shutting_down", False)  # restored after the test
    words = [f"w{i} " for i in range(100)]
    fake_llm_providers.script(chunks=words, delay=0.05)
    payload = json.dumps({"message": "Hi", "provider": "openai", "model": "gpt-4o-mini"}).encode()
    communicator = ApplicationCommunicator(GracefulShutdown(ASGIHandler(), grace=5), stream_scope(alice.token, payload))
    await communicator.send_input({"type": "http.request", "body": payload})
    assert (await communicator.receive_output(timeout=5))["status"] == 200
    received = b""
    while received.count(b"event: chunk") < 2:
        received += (await communicator.receive_output(timeout=5)).get("body", b"")

    assert GracefulShutdown.disconnect_all() == 1
    await asyncio.wait_for(communicator.future, timeout=10)  # ends, not cancelled
    assert_ended_with_the_shutdown_error(received, drain(communicator))

    assistant = await sync_to_async(Message.objects.get)(role="assistant")
    assert assistant.status == "interrupted"
    assert assistant.content.startswith("w0 w1 ")
    assert fake_llm_providers.wait_for_disconnect(timeout=5)
    assert GracefulShutdown.disconnect_all() == 0  # nothing left in flight


async def test_after_disconnect_all_a_response_that_starts_is_ended_and_one_at_work_finishes(monkeypatch):
    """A request still working when the shutdown began answers in full; a response that starts
    streaming after it is ended at once (as a disconnect)."""
    monkeypatch.setattr(GracefulShutdown, "_shutting_down", False)
    proceed = asyncio.Event()

    async def short(scope, receive, send):
        await proceed.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def streaming(scope, receive, send):
        await proceed.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive())["type"] != "http.disconnect":
            pass

    answers = [ApplicationCommunicator(GracefulShutdown(app, grace=5), {"type": "http"}) for app in (short, streaming)]
    for communicator in answers:
        communicator.future  # noqa: B018  (starts the application)
    await asyncio.sleep(0.05)

    assert GracefulShutdown.disconnect_all() == 0  # neither has started its response
    proceed.set()
    for communicator in answers:
        await asyncio.wait_for(communicator.future, timeout=5)

    short_out, stream_out = [drain(c) for c in answers]
    assert short_out[-1] == {"type": "http.response.body", "body": b"ok"}
    assert stream_out[-1] == {"type": "http.response.body", "body": b"", "more_body": False}  # not an event stream


def assert_ended_with_the_shutdown_error(received: bytes, rest: list[dict]) -> None:
    """The stream's last event is an `error` saying the server stopped the reply, with the next
    id, then the body ends (found by an audit: the body just ended, with neither `done` nor
    `error`, and the web client took the cut reply for a finished one)."""
    assert rest[-1]["more_body"] is False
    events = parse_events(received + b"".join(message.get("body", b"") for message in rest))
    ids = [event_id for event_id, _, _ in events if event_id is not None]
    assert ids == list(range(1, len(ids) + 1))
    assert events[-1][1:] == ("error", {"message": SHUTDOWN_ERROR})
    assert rest[-1]["body"] == sse_event(ids[-1], "error", {"message": SHUTDOWN_ERROR})


def drain(communicator: ApplicationCommunicator) -> list[dict]:
    """What the application has sent and the test has not received yet."""
    return [communicator.output_queue.get_nowait() for _ in range(communicator.output_queue.qsize())]


async def test_a_request_that_ignores_the_disconnect_is_cancelled_after_the_grace():
    cancelled = asyncio.Event()

    async def stubborn(scope, receive, send):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    communicator = ApplicationCommunicator(GracefulShutdown(stubborn, grace=0.1), {"type": "http"})
    communicator.future  # noqa: B018  (starts the application)
    await asyncio.sleep(0.05)
    communicator.future.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(communicator.future, timeout=5)
    await asyncio.wait_for(cancelled.wait(), timeout=1)


async def test_a_lost_cancellation_is_repeated():
    """Django's handler cancels its request task once on the disconnect; if that cancellation
    is lost (asyncio.wait_for on Python 3.11 swallows one that lands as a token arrives), the
    stream would run on past the grace. The wrapper cancels again, and the cleanup runs."""
    cleaned_up = asyncio.Event()

    async def stream() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the lost cancellation: carries on
            await asyncio.sleep(60)
        try:
            await asyncio.sleep(60)
        finally:
            cleaned_up.set()

    async def django_like(scope, receive, send):
        await receive()  # the request body
        task = asyncio.ensure_future(stream())
        await receive()  # http.disconnect
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = GracefulShutdown(django_like, grace=30, repeat_after=0.1)  # without the repeat: 30 s
    communicator = ApplicationCommunicator(app, {"type": "http"})
    await communicator.send_input({"type": "http.request", "body": b""})
    await asyncio.sleep(0.05)
    communicator.future.cancel()

    await asyncio.wait_for(communicator.future, timeout=5)
    assert cleaned_up.is_set()


async def test_requests_pass_through_unchanged(db):
    communicator = ApplicationCommunicator(
        GracefulShutdown(ASGIHandler(), grace=5),
        {**stream_scope("", b""), "method": "GET", "path": "/health/live", "raw_path": b"/health/live", "headers": []},
    )
    await communicator.send_input({"type": "http.request", "body": b""})

    start = await communicator.receive_output(timeout=5)
    body = await communicator.receive_output(timeout=5)
    await communicator.wait(timeout=5)

    assert start["status"] == 200
    assert json.loads(body["body"])["status"] == "ok"
