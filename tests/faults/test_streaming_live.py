"""The chat stream served by the production server (and daphne) over a real socket
(RELIABILITY 22, 19, 24): tokens arrive as they are produced, a client that goes away leaves its
partial reply stored, and so does a server that is told to stop."""

import contextlib
import json
import socket
import time

import httpx
import pytest

from lia.shutdown import SHUTDOWN_ERROR
from lia.testing.servers import wait_until
from tests.faults.conftest import bearer, chat_body, open_stream, register, text_of

TOKENS = [f"tok{i} " for i in range(10)]


def test_tokens_stream_through_the_production_stack(live):
    """RELIABILITY 22: ten tokens 100 ms apart reach the client as separate reads, with the
    headers proxies need to pass them on at once (no buffering, no compression although the
    client accepts gzip), for a client that asks for `text/event-stream`; while the provider is
    silent, keep-alive comments keep the connection busy."""
    live.fake.script(chunks=TOKENS, delay=0.1, first_delay=1.5)
    lia = live.start(CHAT_KEEPALIVE_SECONDS=0.3)
    with lia.client() as client:
        token = register(client)
        with open_stream(client, token) as stream:  # Accept: text/event-stream
            reads = []
            while (piece := stream.read()) is not None:
                reads.append(piece)
            headers = stream.response.headers

    assert stream.response.status_code == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in headers
    assert sum(b"event: chunk" in piece for piece in reads) >= 8
    first_chunk = next(index for index, piece in enumerate(reads) if b"event: chunk" in piece)
    assert b"".join(reads[:first_chunk]).count(b": keep-alive\n\n") >= 2
    assert text_of(stream.events) == "".join(TOKENS)
    assert [name for name, _ in stream.events][-1] == "done"


def stored_turn(client: httpx.Client, token: str, conversation_id: str, *, timeout: float = 5.0) -> list[dict]:
    """The conversation's messages once its reply is no longer `streaming` (polled: the save
    after a disconnect runs in the server after the client has gone)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/v1/chat/conversation/{conversation_id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        messages = response.json()["messages"]
        if messages[-1]["status"] != "streaming" or time.monotonic() > deadline:
            return messages
        time.sleep(0.05)


# What each server logs when a request outlives its grace or fails in the application.
SERVER_TROUBLE = {"daphne": "took too long to shut down", "uvicorn": "Exception in ASGI application"}


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_client_disconnect_over_a_real_socket_keeps_the_partial_reply(live, server):
    """RELIABILITY 19 over a real socket: a client that closes its connection after k chunks
    (k = 0 is before the first token; then 1, the middle and the last but one) leaves the user
    message and the reply produced so far stored as interrupted, and the provider's stream closed
    (the fake sees the drop): within RELIABILITY's 2 s and 1 s, plus a second for a busy machine."""
    words = [f"word{i} " for i in range(12)]
    full_text = "".join(words)
    # Tokens well apart: the server acts on the disconnect before the next one, the last included.
    live.fake.script(chunks=words, delay=0.3, first_delay=0.3)
    lia = live.start(server=server)
    with lia.client() as client:
        token = register(client)
        for k in (0, 1, len(words) // 2, len(words) - 1):
            requests_before = len(live.fake.requests)
            disconnects_before = len(live.fake.disconnects)
            with open_stream(client, token, chat_body(f"disconnect after {k}")) as stream:
                stream.read_until(chunks=k, event="start" if k == 0 else None)
                if k == 0:  # before the first token: wait until the provider has been asked
                    deadline = time.monotonic() + 5
                    while len(live.fake.requests) == requests_before and time.monotonic() < deadline:
                        time.sleep(0.01)
                seen = text_of(stream.events)
                conversation_id = stream.events[0][1]["conversation_id"]
            # Leaving the block closed the socket mid-body.
            left = time.monotonic()

            assert live.fake.wait_for_disconnect(count=disconnects_before + 1, timeout=2.0), f"k={k}"
            user, assistant = stored_turn(client, token, conversation_id, timeout=3.0 - (time.monotonic() - left))
            assert (user["role"], user["content"]) == ("user", f"disconnect after {k}")
            assert assistant["status"] == "interrupted", f"k={k}"
            assert assistant["content"].startswith(seen)
            assert full_text.startswith(assistant["content"])
            assert len(assistant["content"]) < len(full_text)
    assert SERVER_TROUBLE[server] not in lia.log()


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_sigterm_with_streams_open_stores_every_partial_reply(live, server):
    """RELIABILITY 24: a deploy SIGTERMs the server while replies are streaming. Every open turn
    goes through the same path as a client disconnect: its reply is stored as interrupted
    with what was produced, and none is left `streaming`. (uvicorn on its own would let them
    run on, then exit by re-raising the signal: lia.uvicorn_worker.)"""
    words = [f"part{i} " for i in range(200)]
    full_text = "".join(words)
    live.fake.script(chunks=words, delay=0.05)
    lia = live.start(server=server)
    streams = 4
    with lia.client() as client, contextlib.ExitStack() as open_streams:
        token = register(client)
        opened = [
            open_streams.enter_context(open_stream(client, token, chat_body(f"turn {i}"))) for i in range(streams)
        ]
        for stream in opened:
            stream.read_until(chunks=2)
        seen = [text_of(stream.events) for stream in opened]

        exit_code = lia.terminate(timeout=30)
        endings = [stream.read_all()[-1] for stream in opened]  # raises if a body was cut off

    assert exit_code == 0  # no crash at exit either
    # Each client is told its reply was stopped (found by an audit: uvicorn's bodies just ended,
    # and daphne cut all but the first stream of a worker off mid-body).
    assert endings == [("error", {"message": SHUTDOWN_ERROR})] * streams
    assert "timeout graceful shutdown exceeded" not in lia.log()  # uvicorn: ended, not timed out
    if server == "uvicorn":  # why the streams' turns log client_disconnected, said once
        assert "server.shutdown" in lia.log()
    assert live.fake.wait_for_disconnect(count=streams, timeout=5)  # every provider stream closed
    messages = live.messages()
    assert [role for role, _, _ in messages] == ["user", "assistant"] * streams
    replies = [(status, content) for role, status, content in messages if role == "assistant"]
    for (status, content), client_saw in zip(replies, seen, strict=True):
        assert status == "interrupted"
        assert content.startswith(client_saw)
        assert full_text.startswith(content)


def test_a_client_that_stops_reading_is_let_go(live):
    """Pitfall 9 and RELIABILITY 17 under uvicorn, which waits for a client to take what it was
    sent: a client still connected that reads nothing more (a network gone silent) held its
    stream at a send, past the time cap, `streaming` until TCP gave up. After
    CHAT_SEND_TIMEOUT_SECONDS of waiting the stream ends as at a disconnect, its reply stored as
    interrupted."""
    words = [f"word{i:05d} " + "x" * 3000 for i in range(6000)]  # 18 MB: more than the buffers hold
    live.fake.script(chunks=words, delay=0.0005)
    lia = live.start(server="uvicorn", CHAT_STREAM_MAX_SECONDS=120, CHAT_SEND_TIMEOUT_SECONDS=1)
    with lia.client() as client:
        token = register(client)
    host, port = lia.url.removeprefix("http://").split(":")
    body = json.dumps(chat_body("I will stop reading")).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        head = f"POST /api/v1/chat/stream HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        head += f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)  # and never reads a byte

        def let_go() -> list | None:
            rows = live.rows("SELECT status, content FROM conversations_message WHERE role = 'assistant'")
            return rows if rows and rows[0][0] != "streaming" else None

        ((status, content),) = wait_until(let_go, timeout=30, interval=0.25, what="the stalled stream ended")

    assert status == "interrupted"
    assert content
    assert "".join(words).startswith(content)
    assert "http.client_stalled" in lia.log()
    assert SERVER_TROUBLE["uvicorn"] not in lia.log()


def test_a_killed_server_leaves_no_reply_streaming_after_a_restart(live):
    """RELIABILITY 20: SIGKILL mid-stream (the OOM killer, a lost node), so no `finally` runs.
    Once Lia is started again, the reply exists once, a start-up sweep has marked it
    interrupted, and it holds what was checkpointed while it streamed (every second or so)."""
    words = [f"tok{i} " for i in range(400)]
    full_text = "".join(words)
    live.fake.script(chunks=words, delay=0.02)
    # Checkpoints every 0.5 s: a heartbeat is stale after 11.5 s, and the server sweeps every 5.75 s.
    env = {"CHAT_CHECKPOINT_SECONDS": 0.5, "CHAT_SWEEP_IN_SERVER": "true"}
    lia = live.start(**env)
    with lia.client() as client:
        token = register(client)
        with open_stream(client, token) as stream:
            stream.read_until(chunks=120)  # about 2.5 s of tokens: past a checkpoint or two
            assert {"done", "error"}.isdisjoint(name for name, _ in stream.events)  # still streaming
            conversation_id = stream.events[0][1]["conversation_id"]
            lia.kill()

    restarted = live.start(**env)
    with restarted.client() as client:
        messages = stored_turn(client, token, conversation_id, timeout=30)

    assert [message["role"] for message in messages] == ["user", "assistant"]
    assert messages[1]["status"] == "interrupted"
    assert messages[1]["content"]
    assert full_text.startswith(messages[1]["content"])
