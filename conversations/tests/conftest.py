import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.db import connection
from django.test import AsyncClient
from django.utils.module_loading import import_string

from conftest import Persona
from conversations.models import Message

STREAM = "/api/v1/chat/stream"


async def stored_statuses() -> list[str]:
    """The stored replies' statuses, read in asgiref's worker thread and its connection closed
    there: left open, it stays out of the pool, and PostgreSQL can't drop the test database."""

    def read() -> list[str]:
        try:
            return list(Message.objects.filter(role="assistant").values_list("status", flat=True))
        finally:
            connection.close()

    return await sync_to_async(read)()


def body(message: str = "Hello!", **extra: Any) -> dict[str, Any]:
    return {"message": message, "provider": "scripted", "model": "test-model", "sentiment_method": "local", **extra}


def parse_events(raw: bytes) -> list[tuple[int | None, str, Any]]:
    """Split an SSE body into (id, event, data); comments come back as (None, ':', text)."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            events.append((None, ":", block))
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((int(lines["id"]), lines["event"], json.loads(lines["data"])))
    return events


async def read_stream(client: AsyncClient, persona: Persona, payload: dict[str, Any]) -> tuple[Any, bytes]:
    response = await client.post(STREAM, json.dumps(payload), content_type="application/json", headers=persona.bearer)
    if not response.streaming:
        return response, response.content
    raw = b"".join([chunk async for chunk in response.streaming_content])
    return response, raw


@pytest.fixture
def stream(async_web) -> Any:
    async def run(persona: Persona, payload: dict[str, Any]) -> tuple[Any, list[tuple[int | None, str, Any]]]:
        response, raw = await read_stream(async_web, persona, payload)
        assert b"\r" not in raw
        return response, parse_events(raw) if response.status_code == 200 else []

    return run


# --- a stream through the whole ASGI application, with a real client disconnect --------------------


def http_scope(token: str, payload: bytes) -> dict:
    """The scope of a chat turn's POST as a server hands it to the application."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": STREAM,
        "raw_path": STREAM.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"accept", b"text/event-stream"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(payload)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def open_stream(token: str, payload: dict) -> ApplicationCommunicator:
    """A chat turn sent to what the server serves (lia.asgi's whole stack), its response begun.
    Unlike the test clients, the test can then send `http.disconnect`."""
    raw = json.dumps(payload).encode()
    application = import_string(settings.ASGI_APPLICATION)
    communicator = ApplicationCommunicator(application, http_scope(token, raw))
    await communicator.send_input({"type": "http.request", "body": raw, "more_body": False})
    start = await communicator.receive_output(timeout=5)
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    return communicator


async def read_until(communicator: ApplicationCommunicator, chunks: int) -> list:
    received = b""
    while True:
        message = await communicator.receive_output(timeout=5)
        received += message.get("body", b"")
        events = parse_events(received)
        if sum(1 for _, name, _ in events if name == "chunk") >= chunks:
            return events


async def wait_for_status(message_id: int, status: str, within: float = 5.0) -> Message:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        message = await sync_to_async(Message.objects.get)(pk=message_id)
        if message.status == status:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached {status}; it is {message.status}")
