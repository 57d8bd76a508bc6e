"""Helpers for the tests that run Lia under a real daphne and break its dependencies.

Everything goes through HTTP as a client would: register, log in, chat over SSE, read the
history. `live.rows(...)` reads the database directly only where Lia can't be asked (it is down).
"""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

STREAM = "/api/v1/chat/stream"
PASSWORD = "Sup3rSecret"
HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here starts its own servers: mark it `faults` (CI runs those once)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)


def register(client: httpx.Client, email: str | None = None) -> str:
    """A new account; its access token."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post(
        "/api/v1/auth/register",
        json={"email": email, "username": email.split("@")[0], "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def chat_body(message: str = "Hello there", **extra: Any) -> dict[str, Any]:
    """A turn answered by the OpenAI adapter, i.e. by the test's FakeLLMServer."""
    return {"message": message, "provider": "openai", "model": "gpt-4o-mini", "sentiment_method": "local", **extra}


def parse_events(raw: bytes) -> list[tuple[str, Any]]:
    """(event, data) of every complete SSE frame in `raw`; comments come back as (":", text)."""
    events: list[tuple[str, Any]] = []
    for block in raw.decode(errors="replace").split("\n\n")[:-1]:
        if block.startswith(":"):
            events.append((":", block))
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        events.append((lines.get("event", "message"), json.loads(lines.get("data", "null"))))
    return events


def text_of(events: list[tuple[str, Any]]) -> str:
    return "".join(data["content"] for name, data in events if name == "chunk")


@dataclass
class Stream:
    """A chat stream being read: every raw read as it arrived, and the events so far.

    One iterator over the body for the stream's whole life: abandoning an httpx `iter_raw()`
    generator closes the connection when it is collected.
    """

    response: httpx.Response
    reads: list[bytes] = field(default_factory=list)
    _pieces: Iterator[bytes] | None = None

    @property
    def raw(self) -> bytes:
        return b"".join(self.reads)

    @property
    def events(self) -> list[tuple[str, Any]]:
        return parse_events(self.raw)

    def read(self) -> bytes | None:
        """The next read off the socket, or None at the end of the body."""
        if self._pieces is None:
            self._pieces = self.response.iter_raw()
        piece = next(self._pieces, None)
        if piece is not None:
            self.reads.append(piece)
        return piece

    def read_until(self, *, chunks: int | None = None, event: str | None = None) -> None:
        """Read until `chunks` chunk events (or the named event) have arrived, or the body ends."""
        while self.read() is not None:
            names = [name for name, _ in self.events]
            if chunks is not None and names.count("chunk") >= chunks:
                return
            if event is not None and event in names:
                return

    def read_all(self) -> list[tuple[str, Any]]:
        while self.read() is not None:
            pass
        return self.events


@contextmanager
def open_stream(client: httpx.Client, token: str, body: dict[str, Any] | None = None) -> Iterator[Stream]:
    """POST a chat turn and hand over the response unread; leaving the block closes the socket."""
    with client.stream(
        "POST", STREAM, json=body or chat_body(), headers={**bearer(token), "Accept": "text/event-stream"}
    ) as response:
        yield Stream(response)


def chat(client: httpx.Client, token: str, body: dict[str, Any] | None = None) -> tuple[int, list[tuple[str, Any]]]:
    """One whole turn: its HTTP status and events."""
    with open_stream(client, token, body) as stream:
        if stream.response.status_code != 200:
            stream.response.read()
            return stream.response.status_code, []
        return 200, stream.read_all()
