"""lia.uvicorn_worker's HTTP protocol: a request head (request line and headers) larger than
MAX_HEAD_BYTES is refused with a 431 in the contract's error shape, however it arrives; heads
within it, and bodies of any size after them, reach the application; a chunked body's trailers
are bounded the same way and never become headers."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from lia.shutdown import GracefulShutdown
from lia.uvicorn_worker import MAX_HEAD_BYTES, Server, config


async def echo_sizes(scope, receive, send):
    """Answers with the sizes of the request's headers and body it was given."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
    names = sorted({name.decode() for name, _ in scope["headers"]})
    payload = json.dumps({"header_bytes": header_bytes, "body_bytes": len(body), "names": names}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture
async def served(monkeypatch) -> AsyncIterator[tuple[str, int]]:
    # The server's shutdown calls GracefulShutdown.disconnect_all(), which marks the whole
    # process as shutting down: restored after the test, or every chat stream a later test
    # opens through lia.asgi is ended at its first byte as if its client had left.
    monkeypatch.setattr(GracefulShutdown, "_shutting_down", False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = Server(config(echo_sizes, loop="asyncio"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110 (uvicorn's Server has a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield listener.getsockname()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        listener.close()


async def exchange(address: tuple[str, int], *parts: bytes, pause: float = 0.0) -> tuple[int, dict, bool]:
    """Send `parts` (with `pause` between them); (status, JSON body, whether the server said
    `connection: close` and closed the connection; a kept-alive one is not waited for)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        for part in parts:
            try:
                writer.write(part)
                await writer.drain()
            except ConnectionError:  # the server answered and closed before the rest was sent
                break
            await asyncio.sleep(pause)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        fields = dict(line.split(b": ", 1) for line in head.lower().split(b"\r\n")[1:] if line)
        body = json.loads(await asyncio.wait_for(reader.readexactly(int(fields[b"content-length"])), 10))
        if b"connection: close" not in head.lower():
            return status, body, False
        return status, body, await asyncio.wait_for(reader.read(1), 10) == b""
    finally:
        writer.close()


def request(headers: bytes = b"", body: bytes = b"") -> bytes:
    return (
        b"POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        + headers
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def header(size: int, name: bytes = b"x-padding") -> bytes:
    return name + b": " + b"a" * size + b"\r\n"


async def test_a_head_within_the_limit_reaches_the_application(served):
    status, body, _ = await exchange(served, request(header(MAX_HEAD_BYTES - 1024)))

    assert status == 200
    assert body["header_bytes"] > MAX_HEAD_BYTES - 1024


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda: [request(header(MAX_HEAD_BYTES + 1))], id="one header, at once"),
        pytest.param(lambda: [request(b"".join(header(200, b"x-h%d" % i) for i in range(100)))], id="many headers"),
        pytest.param(lambda: [b"GET /" + b"a" * (MAX_HEAD_BYTES + 1) + b" HTTP/1.1\r\n\r\n"], id="request line"),
    ],
)
async def test_a_head_over_the_limit_is_a_431_in_the_contracts_shape(served, send: Callable[[], list[bytes]]):
    status, body, closed = await exchange(served, *send())

    assert status == 431
    assert body == {"error": {"message": f"Request header fields too large (limit {MAX_HEAD_BYTES} bytes)"}}
    assert closed


async def test_a_head_sent_in_small_pieces_is_counted_across_them(served):
    # A head that never ends, sent until just past the limit (more after the server has closed
    # would be answered by a reset, not the 431).
    raw = request(header(MAX_HEAD_BYTES * 2))[: MAX_HEAD_BYTES + 1000]
    pieces = [raw[i : i + 1000] for i in range(0, len(raw), 1000)]

    status, _, closed = await exchange(served, *pieces, pause=0.002)

    assert status == 431
    assert closed


async def test_a_large_body_arriving_with_its_head_is_not_counted_as_head(served):
    body = b"b" * (MAX_HEAD_BYTES * 4)

    status, answer, _ = await exchange(served, request(body=body))

    assert status == 200
    assert answer["body_bytes"] == len(body)


async def test_every_request_of_a_kept_alive_connection_gets_the_whole_limit(served):
    near_limit = request(header(MAX_HEAD_BYTES - 1024))
    reader, writer = await asyncio.open_connection(*served)
    try:
        for _ in range(3):
            writer.write(near_limit)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ")
            await reader.readuntil(b"}")
    finally:
        writer.close()


async def test_pipelined_requests_in_one_read_are_each_measured_alone(served):
    small = b"GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\n" + header(900) + b"\r\n"
    count = 40  # ~38 KB in one write: more than the limit together, far less each
    reader, writer = await asyncio.open_connection(*served)
    try:
        writer.write(small * count)
        for _ in range(count):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ")
            await reader.readuntil(b"}")
    finally:
        writer.close()


def chunked_head() -> bytes:
    return b"POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n"


async def test_trailers_never_become_headers(served):
    status, body, _ = await exchange(
        served, chunked_head() + b"5\r\nhello\r\n0\r\nx-forwarded-for: 203.0.113.9\r\n\r\n"
    )

    assert status == 200
    assert body["body_bytes"] == 5
    assert "x-forwarded-for" not in body["names"]


async def test_endless_trailers_are_cut_off_at_the_limit(served):
    reader, writer = await asyncio.open_connection(*served)
    try:
        writer.write(chunked_head() + b"5\r\nhello\r\n0\r\nx-trailer: ")
        for _ in range(MAX_HEAD_BYTES // 1000 + 2):  # a trailer that never ends, just past the limit
            with contextlib.suppress(ConnectionError):  # the server may have closed already
                writer.write(b"t" * 1000)
                await writer.drain()
            await asyncio.sleep(0.002)

        # The request is under way (its body was read), so no 431 can answer it: it just ends.
        with contextlib.suppress(ConnectionResetError):  # ended while more was on its way
            assert await asyncio.wait_for(reader.read(), 10) == b""
        assert reader.at_eof() or reader.exception() is not None
    finally:
        writer.close()


async def test_an_upgrade_request_over_the_limit_is_a_431(served):
    upgrade = b"connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n"
    upgrade += b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    raw = b"GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\n" + upgrade + header(MAX_HEAD_BYTES) + b"\r\n"

    status, _, closed = await exchange(served, raw)

    assert status == 431
    assert closed


@pytest.mark.django_db(transaction=True)
async def test_a_client_that_stops_reading_is_dropped_without_an_error(alice, scripted, settings, monkeypatch):
    """lia.handler gives up on a chat stream whose client, still connected, takes nothing for
    CHAT_SEND_TIMEOUT_SECONDS; its body can't be ended (the client takes nothing), so Lia left
    the response unfinished, and uvicorn logged an ERROR, "ASGI callable returned without
    completing response.", for every such client (an unauthenticated-looking alert any user could
    raise at will). The worker's protocol now lets the response drop the connection instead."""
    import logging

    from django.utils.module_loading import import_string

    from conversations.tests.conftest import body, stored_statuses

    monkeypatch.setattr(GracefulShutdown, "_shutting_down", False)
    logged: list[str] = []
    recorder = logging.Handler()
    recorder.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    for name in ("uvicorn.error", "lia.access"):
        logging.getLogger(name).addHandler(recorder)
    settings.CHAT_SEND_TIMEOUT_SECONDS = 0.5
    scripted.reply(*[("x" * 60_000) + f" w{i}" for i in range(60)], delay=0.01)  # more than the buffers hold
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = Server(config(import_string(settings.ASGI_APPLICATION), loop="asyncio"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    try:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(client, listener.getsockname())
        payload = json.dumps(body()).encode()
        head = (
            f"POST /api/v1/chat/stream HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {alice.token}\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        await loop.sock_sendall(client, head.encode() + payload)  # and never reads a byte

        statuses: list[str] = []
        for _ in range(100):
            await asyncio.sleep(0.1)
            statuses = await stored_statuses()
            if statuses and statuses[0] != "streaming":
                break
        await asyncio.sleep(0.3)  # the application has returned
    finally:
        client.close()
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        listener.close()
        for name in ("uvicorn.error", "lia.access"):
            logging.getLogger(name).removeHandler(recorder)

    assert statuses == ["interrupted"]
    assert any("http.client_stalled" in line for line in logged)
    assert not any("without completing response" in line for line in logged), logged
