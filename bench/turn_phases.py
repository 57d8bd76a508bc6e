"""Where one chat turn's time goes before its first chunk, in process:
`python -m bench.turn_phases [--turns 300] [--later] [--embedded] [--pause-ms 0]`.

The provider fake runs in its own process (as in the benchmark); Lia's ASGI application runs in
this one, under the benchmark's production settings, against a fresh `lia_bench_turns` database (or
SQLite with `--embedded`). One turn at a time, each a POST /api/v1/chat/stream with a bearer
token, timed from the call into the application to its first `event: chunk`; timestamps taken
at the steps below give the median time to each. The same requests straight to the fake, over a
new connection each by the benchmark's own client, give what the provider itself takes. No server,
socket or client of Lia's is measured: `python -m bench` adds those.

Back to back, the turns run on a hot CPU. `--pause-ms` leaves the machine idle that long before
each turn (and each request to the fake alone), as a server between arrivals is: on a shared
virtual machine every step then takes longer (README "Performance").
"""

import argparse
import asyncio
import functools
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.client import one_stream
from bench.runner import LIA_SETTING_PREFIXES, Bench, Config, clear_redis, drop_postgres, fake_provider

# Not the benchmark's lia_bench: the two can run at once.
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/lia_bench_turns"

# (step, what is timed: "module:attribute", when: "call" or "return"), in the order they happen.
STEPS: list[tuple[str, str, str]] = [
    (
        "Django's handler and middleware, the hop to the view's thread, DRF's set-up",
        "rest_framework.views:APIView.initial",
        "call",
    ),
    (
        "authentication: the JWT's signature and claims",
        "accounts.authentication:JWTCookieOrBearerAuthentication.authenticate",
        "return",
    ),
    ("validation (body, rate limit, token budget)", "conversations.apis:turn_start", "call"),
    ("the session check and the write-ahead (turn_start)", "conversations.apis:turn_start", "return"),
    ("back to the event loop, the response's headers", "django.core.handlers.asgi:ASGIHandler.send_response", "call"),
    ("the provider request built and sent (SDK)", "httpx2:AsyncClient.send", "call"),
    ("the provider's response headers", "httpx2:AsyncClient.send", "return"),
    ("its first text chunk read, the SSE frame built", "conversations.streaming:sse_event", "chunk"),
]


class Marks:
    """perf_counter at each step of the turn in flight (one turn at a time)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.turns: list[dict[str, float]] = []

    def hit(self, step: str) -> None:
        self.current.setdefault(step, time.perf_counter())

    def install(self) -> None:
        import importlib

        for step, target, when in STEPS:
            module_name, attribute = target.split(":")
            owner: Any = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, name, self._wrap(getattr(owner, name), step, when))

    def _wrap(self, fn: Callable[..., Any], step: str, when: str) -> Callable[..., Any]:
        marks = self
        if when == "chunk":  # sse_event(event_id, name, data): the first frame named "chunk"

            @functools.wraps(fn)
            def frame(*args: Any, **kwargs: Any) -> Any:
                if args[1] == "chunk":
                    marks.hit(step)
                return fn(*args, **kwargs)

            return frame
        if asyncio.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def coroutine(*args: Any, **kwargs: Any) -> Any:
                if when == "call":
                    marks.hit(step)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    if when == "return":
                        marks.hit(step)

            return coroutine

        @functools.wraps(fn)
        def function(*args: Any, **kwargs: Any) -> Any:
            if when == "call":
                marks.hit(step)
            try:
                return fn(*args, **kwargs)
            finally:
                if when == "return":
                    marks.hit(step)

        return function


def chat_scope(token: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/chat/stream",
        "raw_path": b"/api/v1/chat/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def one_turn(application: Any, token: str, conversation_id: str | None, marks: Marks) -> tuple[float, str]:
    """(ms to the first chunk, the conversation's id); the whole reply is read."""
    body = json.dumps({"message": "Hello there", **({"conversation_id": conversation_id} if conversation_id else {})})
    pending = [{"type": "http.request", "body": body.encode(), "more_body": False}]
    finished = asyncio.Event()
    first_chunk: float | None = None
    conversation = ""
    status = 0

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal first_chunk, conversation, status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if not conversation and b"event: start" in chunk:
                conversation = json.loads(chunk.split(b"data: ", 1)[1].split(b"\n", 1)[0])["conversation_id"]
            if first_chunk is None and b"event: chunk" in chunk:
                first_chunk = time.perf_counter()
            if not message.get("more_body"):
                finished.set()

    marks.current = {}
    started = time.perf_counter()
    await application(chat_scope(token, body.encode()), receive, send)
    if status != 200 or first_chunk is None:
        raise RuntimeError(f"the turn answered {status} without a chunk")
    marks.current = {step: at - started for step, at in marks.current.items()}
    marks.turns.append(marks.current)
    return (first_chunk - started) * 1000, conversation


async def fake_first_chunks(job: dict[str, Any], turns: int, pause: float = 0.0) -> list[float]:
    """ms to the fake's first text chunk, one request at a time, each on a new connection: the
    benchmark's own client and its "fake TTFT"."""
    opened = asyncio.Event()
    opened.set()  # no start gate: one stream at a time
    times = []
    for _ in range(turns):
        await asyncio.sleep(pause)
        record = await one_stream(job, 0, opened, [time.perf_counter()])
        if not record.ok or record.ttft_s is None:
            raise RuntimeError(f"the fake's stream failed: {record.error}")
        times.append(record.ttft_s * 1000)
    return times


async def measure(turns: int, later: bool, fake_job: dict[str, Any], pause: float = 0.0) -> dict[str, Any]:
    from django.db import connection

    from accounts.models import User
    from accounts.tokens import token_issue
    from lia.asgi import application

    def new_user() -> str:
        user = User.objects.create_user(email="turns@example.com", username="turns", password=secrets.token_urlsafe())
        token = token_issue(user=user).value
        connection.close()
        return token

    token = await asyncio.to_thread(new_user)
    marks = Marks()
    marks.install()
    conversation: str | None = None
    for _ in range(20):  # warm-up
        await one_turn(application, token, None, marks)
    marks.turns.clear()
    times = []
    for index in range(turns):
        await asyncio.sleep(pause)
        ms, started = await one_turn(application, token, conversation if later else None, marks)
        times.append(ms)
        # Later turns: ten per conversation (its history grows to 18 messages), then a new one.
        conversation = None if index % 10 == 9 else (conversation or started)
    fake = await fake_first_chunks(fake_job, turns, pause)
    return {"first_chunk_ms": times, "fake_ms": fake, "steps": marks.turns}


def report(result: dict[str, Any]) -> str:
    times, fake = result["first_chunk_ms"], result["fake_ms"]
    lines = [
        f"{len(times)} turns, one at a time; medians in ms from the call into the application",
        "",
        f"{'step':<80} {'ends at':>8} {'takes':>7}",
    ]
    previous = 0.0
    for step, _, _ in STEPS:
        ends = statistics.median(turn[step] * 1000 for turn in result["steps"] if step in turn)
        lines.append(f"{step:<80} {ends:>8.2f} {ends - previous:>7.2f}")
        previous = ends
    first, fake_p50 = statistics.median(times), statistics.median(fake)
    lines += [
        "",
        f"first chunk p50 / p90: {first:.2f} / {statistics.quantiles(times, n=10)[-1]:.2f} ms",
        f"the fake alone (the benchmark's client, a new connection each) p50: {fake_p50:.2f} ms",
        f"Lia-added in process p50: {first - fake_p50:.2f} ms (a server, its socket and a client add more)",
    ]
    return "\n".join(lines)


def close_database() -> None:
    """Every connection this process opened, its pool included (before the database is dropped)."""
    from django.conf import settings

    if not settings.configured:
        return
    from django.db import connections

    connections.close_all()
    wrapper = connections["default"]
    if getattr(wrapper, "pool", None) is not None:
        wrapper.close_pool()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--later", action="store_true", help="turns in existing conversations (with history)")
    parser.add_argument("--embedded", action="store_true", help="SQLite in a temporary directory")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_TURNS_DATABASE_URL", DATABASE_URL))
    parser.add_argument("--chunks", type=int, default=5, help="text chunks per reply")
    parser.add_argument("--pause-ms", type=float, default=0.0, help="idle time before each turn")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if args.turns < 2:
        parser.error("--turns must be at least 2")
    if args.pause_ms < 0:
        parser.error("--pause-ms must be 0 or more")
    config = Config(embedded=args.embedded, database_url=args.database_url, chunks=args.chunks, delay=0.002)
    bench = Bench(config)
    bench.tmp = tempfile.TemporaryDirectory(prefix="lia-turns-") if args.embedded else None
    with fake_provider(config) as urls:
        bench.fake_urls = urls
        try:
            bench.migrate()  # a fresh database (its name must contain "bench"), migrated
            # This process is the server: only the benchmark's settings, none of the caller's.
            for key in [key for key in os.environ if key.startswith(LIA_SETTING_PREFIXES)]:
                del os.environ[key]
            os.environ.update({**bench.server_env(), "CHAT_SWEEP_IN_SERVER": "false"})
            import django

            django.setup(set_prefix=False)
            fake_job = bench.stream_job(urls["url"], "fake", n=1, rounds=1, ramp=0.0)
            result = asyncio.run(measure(args.turns, args.later, fake_job, args.pause_ms / 1000))
        finally:
            close_database()
            if bench.tmp is not None:
                bench.tmp.cleanup()
            else:
                drop_postgres(config)
                clear_redis(config.redis_url, bench.redis_prefix)
    sys.stdout.write((json.dumps(result) if args.json else report(result)) + "\n")


if __name__ == "__main__":
    main()
