"""The load client: a separate process, so its CPU is not the server's (`python -m bench.client`).

It reads one job (JSON) on stdin and writes one result (JSON) on stdout:

* ``streams``: N concurrent SSE streams against Lia's chat stream (``target: lia``) or straight
  against the provider fake (``target: fake``). Every stream waits behind a start gate, so all N
  connect together; with ``ramp_s`` they arrive evenly spread over that many seconds after it
  instead. Each records time to headers, to the first text chunk (TTFT) and to the end, and when
  it started, got its first chunk and ended, counted from the gate. ``deadline`` bounds a round
  from its gate, ramp included.
* ``history``: ``concurrency`` keep-alive connections calling GET /api/v1/chat/history for
  ``duration`` seconds.
* ``register``: registers ``count`` users through the API and returns their tokens.

HTTP/1.1 is spoken directly over asyncio streams (chunked and Content-Length bodies): no client
library, so the client's own cost per chunk stays small next to the server's. Every address must
be loopback; connects, reads and the whole job have timeouts, so the client always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import resource
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

now = time.perf_counter


class HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class Incomplete(Exception):
    """The body ended before the stream's last event."""


class SSEErrorEvent(Exception):
    """Lia ended the stream with an `error` event."""


def loopback_address(url: str) -> tuple[str, int]:
    """(host, port) of `url`; refuses anything that is not a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or parts.port is None:
        raise SystemExit(f"bench.client: refusing {url!r}: only loopback addresses with a port are allowed")
    return host, parts.port


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def body_parts(self, idle: float) -> Any:
        """The body, as it arrives (one item per chunk for chunked bodies)."""
        reader = self.reader
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = await asyncio.wait_for(reader.readuntil(b"\r\n"), idle)
                size = int(line.split(b";", 1)[0], 16)
                if size == 0:
                    await asyncio.wait_for(reader.readuntil(b"\r\n"), idle)  # (no trailers)
                    return
                data = await asyncio.wait_for(reader.readexactly(size + 2), idle)
                yield data[:-2]
        elif "content-length" in self.headers:
            length = int(self.headers["content-length"])
            if length:
                yield await asyncio.wait_for(reader.readexactly(length), idle)
        else:
            while data := await asyncio.wait_for(reader.read(65536), idle):
                yield data

    async def read_all(self, idle: float) -> bytes:
        return b"".join([part async for part in self.body_parts(idle)])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def connect(host: str, port: int, seconds: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), seconds)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def send(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    method: str,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    seconds: float,
) -> Response:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds)
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return Response(status, parsed, reader, writer)


class LoopLag:
    """How late this client's own event loop wakes up: its delays inflate every measurement."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = now()
            await asyncio.sleep(self.interval)
            self.lags.append(max(now() - started - self.interval, 0.0))

    def __enter__(self) -> LoopLag:
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()

    def summary(self) -> dict[str, float]:
        lags = sorted(self.lags) or [0.0]
        return {"p50_ms": lags[len(lags) // 2] * 1000, "max_ms": lags[-1] * 1000}


# --- streams ----------------------------------------------------------------------------------


@dataclass
class StreamRecord:
    ok: bool = False
    error: str | None = None
    status: int | None = None
    connect_s: float | None = None  # TCP connect (SYN retries show up here)
    headers_s: float | None = None  # request sent → response headers
    ttft_s: float | None = None  # request sent → first text chunk
    total_s: float | None = None  # request sent → end of the stream
    start_at: float | None = None  # seconds after the gate opened
    first_chunk_at: float | None = None  # seconds after the gate opened
    end_at: float | None = None  # seconds after the gate opened
    round: int = 0
    chunks: int = 0
    bytes: int = 0


def start_delay(index: int, n: int, ramp_s: float) -> float:
    """Seconds after the gate at which stream `index` of `n` starts: evenly spread over the ramp."""
    return index * ramp_s / n if ramp_s > 0 else 0.0


def _is_lia_chunk(block: bytes) -> str | None:
    """The event name of one SSE block from Lia."""
    for line in block.split(b"\n"):
        if line.startswith(b"event: "):
            return line[7:].decode()
    return None


def _fake_has_content(block: bytes) -> bool:
    """An OpenAI chunk carrying text (the first frame has only the role and empty content)."""
    if not block.startswith(b"data: {"):
        return False
    try:
        choices = json.loads(block[6:]).get("choices") or []
    except ValueError:
        return False
    return any((choice.get("delta") or {}).get("content") for choice in choices)


async def one_stream(
    job: dict[str, Any], index: int, gate: asyncio.Event, gate_at: list[float], round_: int = 0
) -> StreamRecord:
    record = StreamRecord(round=round_)
    host, port = loopback_address(job["url"])
    target = job["target"]
    if target == "lia":
        path = "/api/v1/chat/stream"
        tokens = job["tokens"]
        headers = {
            "Authorization": f"Bearer {tokens[index % len(tokens)]}",
            "Accept": "text/event-stream",
            "Content-Type": "application/json",
        }
    else:
        path = "/v1/chat/completions"
        headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    body = json.dumps(job["body"]).encode()
    await gate.wait()
    delay = start_delay(index, job["n"], job.get("ramp_s", 0.0))
    if delay:
        try:
            await asyncio.sleep(gate_at[0] + delay - now())  # from the gate: no drift from late wake-ups
        except asyncio.CancelledError:
            record.error = "deadline"  # the round's deadline came before this stream's turn
            return record
    started = now()
    record.start_at = started - gate_at[0]
    response = None
    try:
        async with asyncio.timeout(job["stream_timeout"]):
            reader, writer = await connect(host, port, job["connect_timeout"])
            record.connect_s = now() - started
            response = await send(
                reader,
                writer,
                method="POST",
                host=host,
                port=port,
                path=path,
                headers=headers,
                body=body,
                seconds=job["idle_timeout"],
            )
            record.status = response.status
            record.headers_s = now() - started
            if response.status != 200:
                await response.read_all(job["idle_timeout"])
                raise HTTPError(response.status)
            buffer = b""
            finished = False
            async for part in response.body_parts(job["idle_timeout"]):
                record.bytes += len(part)
                buffer += part
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    if target == "lia":
                        name = _is_lia_chunk(block)
                        if name == "chunk":
                            record.chunks += 1
                            if record.ttft_s is None:
                                arrived = now()
                                record.ttft_s = arrived - started
                                record.first_chunk_at = arrived - gate_at[0]
                        elif name == "done":
                            finished = True
                        elif name == "error":
                            raise SSEErrorEvent()
                    elif block == b"data: [DONE]":
                        finished = True
                    elif _fake_has_content(block):
                        record.chunks += 1
                        if record.ttft_s is None:
                            arrived = now()
                            record.ttft_s = arrived - started
                            record.first_chunk_at = arrived - gate_at[0]
            if not finished:
                raise Incomplete()
            record.ok = True
    except HTTPError as exc:
        record.error = f"http_{exc.status}"
    except TimeoutError:
        record.error = "timeout"
    except asyncio.CancelledError:
        record.error = "deadline"
    except Exception as exc:
        record.error = type(exc).__name__
    finally:
        record.total_s = now() - started
        record.end_at = now() - gate_at[0]
        if response is not None:
            response.close()
    return record


async def run_streams(job: dict[str, Any]) -> dict[str, Any]:
    """`rounds` times: N streams behind one start gate (spread over `ramp_s` after it); the next
    round starts when all ended."""
    records: list[dict[str, Any]] = []
    spans: list[float] = []
    ended_at: list[float] = []  # time.monotonic(), the machine's clock: the runner's samplers read it too
    with LoopLag() as lag:
        for round_ in range(job.get("rounds", 1)):
            gate = asyncio.Event()
            gate_at = [0.0]
            tasks = [asyncio.create_task(one_stream(job, i, gate, gate_at, round_)) for i in range(job["n"])]
            await asyncio.sleep(0.05)  # every task is parked on the gate
            gate_at[0] = now()
            gate.set()
            _, pending = await asyncio.wait(tasks, timeout=job["deadline"])
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            spans.append(now() - gate_at[0])
            ended_at.append(time.monotonic())
            records += [asdict(task.result()) for task in tasks]
    return {"records": records, "round_spans_s": spans, "round_ended_at": ended_at, "client_loop_lag": lag.summary()}


# --- history ----------------------------------------------------------------------------------


@dataclass
class HistoryWorker:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


async def history_worker(job: dict[str, Any], index: int, stop_at: float, worker: HistoryWorker) -> None:
    host, port = loopback_address(job["url"])
    tokens = job["tokens"]
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    sent = 0
    while now() < stop_at and len(worker.latencies) < job["max_requests_per_worker"]:
        token = tokens[(index + sent * job["concurrency"]) % len(tokens)]
        sent += 1
        started = now()
        try:
            if connection is None:
                connection = await connect(host, port, job["connect_timeout"])
            response = await send(
                *connection,
                method="GET",
                host=host,
                port=port,
                path=f"/api/v1/chat/history?limit={job['limit']}",
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                body=None,
                seconds=job["idle_timeout"],
            )
            await response.read_all(job["idle_timeout"])
            if response.headers.get("connection", "").lower() == "close":
                response.close()
                connection = None
            if response.status != 200:
                raise HTTPError(response.status)
            worker.latencies.append(now() - started)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # A keep-alive connection the server closed: count it, reconnect.
            worker.errors[type(exc).__name__] = worker.errors.get(type(exc).__name__, 0) + 1
            connection = None
        except HTTPError as exc:
            worker.errors[f"http_{exc.status}"] = worker.errors.get(f"http_{exc.status}", 0) + 1
        except Exception as exc:
            worker.errors[type(exc).__name__] = worker.errors.get(type(exc).__name__, 0) + 1
            if connection is not None:
                connection[1].close()
            connection = None
    if connection is not None:
        connection[1].close()


async def run_history(job: dict[str, Any]) -> dict[str, Any]:
    workers = [HistoryWorker() for _ in range(job["concurrency"])]
    with LoopLag() as lag:
        started = now()
        stop_at = started + job["duration"]
        tasks = [asyncio.create_task(history_worker(job, i, stop_at, w)) for i, w in enumerate(workers)]
        _, pending = await asyncio.wait(tasks, timeout=job["duration"] + job["idle_timeout"] + 5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall = now() - started
    errors: dict[str, int] = {}
    for worker in workers:
        for name, count in worker.errors.items():
            errors[name] = errors.get(name, 0) + count
    latencies = [value for worker in workers for value in worker.latencies]
    return {"latencies": latencies, "errors": errors, "wall_s": wall, "client_loop_lag": lag.summary()}


# --- register ---------------------------------------------------------------------------------


async def run_register(job: dict[str, Any]) -> dict[str, Any]:
    host, port = loopback_address(job["url"])
    semaphore = asyncio.Semaphore(job["concurrency"])
    tokens: list[str | None] = [None] * job["count"]
    errors: dict[str, int] = {}

    async def register(i: int) -> None:
        name = f"{job['prefix']}_{i}"
        payload = {"email": f"{name}@example.com", "username": name, "password": job["password"]}
        async with semaphore:
            try:
                reader, writer = await connect(host, port, job["connect_timeout"])
                response = await send(
                    reader,
                    writer,
                    method="POST",
                    host=host,
                    port=port,
                    path="/api/v1/auth/register",
                    headers={"Content-Type": "application/json", "Connection": "close"},
                    body=json.dumps(payload).encode(),
                    seconds=job["idle_timeout"],
                )
                data = await response.read_all(job["idle_timeout"])
                response.close()
                if response.status != 201:
                    raise HTTPError(response.status)
                tokens[i] = json.loads(data)["access_token"]
            except HTTPError as exc:
                errors[f"http_{exc.status}"] = errors.get(f"http_{exc.status}", 0) + 1
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    started = now()
    await asyncio.wait_for(asyncio.gather(*(register(i) for i in range(job["count"]))), job["deadline"])
    return {"tokens": [t for t in tokens if t], "errors": errors, "wall_s": now() - started}


RUNNERS = {"streams": run_streams, "history": run_history, "register": run_register}


def main() -> None:
    job = json.loads(sys.stdin.read())
    loopback_address(job["url"])
    job.setdefault("connect_timeout", 10.0)
    job.setdefault("idle_timeout", 30.0)
    job.setdefault("deadline", 300.0)
    job.setdefault("ramp_s", 0.0)
    job.setdefault("stream_timeout", job["deadline"])
    limit = raise_open_files_limit()
    if job["kind"] == "streams" and job["n"] + 64 > limit:
        raise SystemExit(f"bench.client: open-files limit {limit} is too low for {job['n']} streams")
    result = asyncio.run(RUNNERS[job["kind"]](job))
    result["open_files_limit"] = limit
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
