"""The floor: the least any Python chat backend can add, served as Lia is (`--floor`).

An ASGI application with none of Lia in it (no Django, no authentication, no database, no
validation): it reads the request's JSON body, sends the SSE headers, opens a stream to the
provider through the OpenAI SDK as Lia's adapter does (one client per process on aiohttp, no retries,
`post()` with plain-JSON chunks rather than the SDK's typed ones, usage requested) and forwards
each text delta as an `event: chunk` frame, then `event: done`. `python -m bench --floor` runs
it under the same server, workers and arrivals as Lia, right after Lia's run of the same level,
so "Lia-added" splits into what the server, the SDK and the extra hop cost anyway (floor-added)
and what Lia's own work before the first chunk costs on top (Lia over floor).

It answers `GET /health/live` (the runner's readiness probe) and every POST the same way; it
reads OPENAI_BASE_URL and OPENAI_API_KEY, as Lia does under the benchmark. Like Lia's server
(lia.asgi.warm_up), it builds its client and imports what the first request would import when it
loads, not during a measured request.
"""

import json
import os
import threading
from functools import cache
from typing import Any

import anyio
import openai

# As llm.providers.openai sends it (not imported: nothing of Lia runs here).
REQUEST_OPTIONS: Any = {"security": {"bearer_auth": True}}


@cache
def client() -> openai.AsyncOpenAI:
    """One per process: a server has one event loop."""
    return openai.AsyncOpenAI(
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key=os.environ.get("OPENAI_API_KEY", "sk-bench"),
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(),  # Lia's adapter's HTTP layer
    )


def frame(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {name}\ndata: {payload}\n\n".encode()


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ConnectionError("the client went away")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


def text_of(chunk: object) -> str | None:
    if not isinstance(chunk, dict):
        return None
    for choice in (chunk.get("choices") or [])[:1]:
        content = (choice.get("delta") or {}).get("content")
        if isinstance(content, str) and content:
            return content
    return None


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # the benchmark's servers send no lifespan events
        return
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
        return
    request = json.loads(await read_body(receive))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")],
        }
    )
    stream = await client().post(
        "/chat/completions",
        body={
            "model": request.get("model") or "bench-model",
            "messages": [{"role": "user", "content": request["message"]}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        cast_to=object,
        options=REQUEST_OPTIONS,
        stream=True,
        stream_cls=openai.AsyncStream[object],
    )
    event_id = 0
    async with stream:
        async for chunk in stream:
            if text := text_of(chunk):
                event_id += 1
                await send(
                    {
                        "type": "http.response.body",
                        "body": frame(event_id, "chunk", {"content": text}),
                        "more_body": True,
                    }
                )
    await send({"type": "http.response.body", "body": frame(event_id + 1, "done", {}), "more_body": False})


def warm_up() -> None:
    """The client, and anyio's asyncio backend (the SDK's first stream imports it), in a thread
    of their own: the server may already have an event loop set in this one."""
    client()
    warmer = threading.Thread(target=anyio.run, args=(anyio.sleep, 0))
    warmer.start()
    warmer.join()


if "OPENAI_BASE_URL" in os.environ:  # as a server loads it (the tests set the URL later)
    warm_up()
