import json
from typing import Any

import pytest
from django.test import AsyncClient

from conftest import Persona

STREAM = "/api/v1/chat/stream"


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
