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

`durable_application` (`--floor-durable`) is the same proxy plus the two database round trips
Lia's turn makes before it asks the provider, as a backend that stores what users send and
honours logouts makes them: it reads the user's row (one indexed SELECT), then commits the
user's message (one INSERT, autocommitted, so one WAL flush), both through psycopg's async pool on the event loop
(no thread hops), into tables of its own in the benchmark's PostgreSQL database. No JWT, no ORM,
no framework, no validation: the least such a turn costs on this machine, where "Lia over the
durable floor" is what Django, DRF, the ORM and Lia's checks add.
"""

import asyncio
import json
import os
import threading
from functools import cache
from typing import Any

import anyio
import openai
from psycopg_pool import AsyncConnectionPool

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


async def answer_health(scope: dict[str, Any], send: Any) -> bool:
    """Answer what is not a chat turn (the readiness probe); False for a POST."""
    if scope["type"] != "http":  # the benchmark's servers send no lifespan events
        return True
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
        return True
    return False


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if await answer_health(scope, send):
        return
    await forward(json.loads(await read_body(receive)), send)


async def forward(request: dict[str, Any], send: Any) -> None:
    """Stream the provider's reply to `request` as SSE chunk frames."""
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


# --- The durable floor -------------------------------------------------------------------------

FLOOR_USER_ID = 1
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bench_floor_user (id bigint PRIMARY KEY, is_active boolean NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_floor_message (id bigserial PRIMARY KEY,"
    " user_id bigint NOT NULL REFERENCES bench_floor_user (id), content text NOT NULL,"
    " created_at timestamptz NOT NULL)",
    "INSERT INTO bench_floor_user (id, is_active) VALUES (1, true) ON CONFLICT DO NOTHING",
)
_pool: AsyncConnectionPool | None = None
_pool_lock = asyncio.Lock()


async def pool() -> AsyncConnectionPool:
    """Sized and bounded as Lia's pool is (the DATABASE_POOL_* variables the runner passes, with
    Lia's defaults), but all of it opened up front; opened, and the tables made, on first use."""
    global _pool
    if _pool is not None:
        return _pool
    async with _pool_lock:
        if _pool is None:
            size = int(os.environ.get("DATABASE_POOL_MAX_SIZE") or 10)
            new = AsyncConnectionPool(
                os.environ["DATABASE_URL"],
                min_size=size,
                max_size=size,
                timeout=float(os.environ.get("DATABASE_POOL_TIMEOUT") or 3.0),
                max_waiting=int(os.environ.get("DATABASE_POOL_MAX_WAITING") or 200),
                kwargs={"autocommit": True},
                open=False,
            )
            try:
                await new.open(wait=True)
                async with new.connection() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(7231)")  # the other workers make them too
                    for statement in SCHEMA:
                        await conn.execute(statement)
            except BaseException:
                await new.close()
                raise
            _pool = new
    return _pool


async def durable_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if await answer_health(scope, send):
        return
    request = json.loads(await read_body(receive))
    async with (await pool()).connection() as conn:
        cursor = await conn.execute("SELECT is_active FROM bench_floor_user WHERE id = %s", [FLOOR_USER_ID])
        row = await cursor.fetchone()
        if row is None or not row[0]:
            raise RuntimeError("the floor's user is missing")
        await conn.execute(
            "INSERT INTO bench_floor_message (user_id, content, created_at) VALUES (%s, %s, now())",
            [FLOOR_USER_ID, request["message"]],
        )
    await forward(request, send)


def warm_up() -> None:
    """The client, and anyio's asyncio backend (the SDK's first stream imports it), in a thread
    of their own: the server may already have an event loop set in this one."""
    client()
    warmer = threading.Thread(target=anyio.run, args=(anyio.sleep, 0))
    warmer.start()
    warmer.join()


if "OPENAI_BASE_URL" in os.environ:  # as a server loads it (the tests set the URL later)
    warm_up()
