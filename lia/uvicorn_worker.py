"""One uvicorn worker serving Lia on an inherited, listening socket: `python -m lia.uvicorn_worker
--fd N`, as `manage.py serve --server uvicorn` starts it (uvicorn's own `--fd` assumes a Unix
socket).

It shuts down as daphne does, which is what RELIABILITY's graceful shutdown and the fault tests
hold Lia to: on SIGTERM every request in flight ends at once as a client disconnect (open chat
streams store their partial replies as `interrupted`, lia.shutdown), the worker waits for them
(up to SHUTDOWN_GRACE_SECONDS) and exits 0. uvicorn on its own would let them run on for its
graceful timeout, cancel them without waiting for their `finally`, then exit by re-raising the
signal. Proxy headers are Lia's to trust (TRUSTED_PROXY_COUNT), not uvicorn's; Lia writes its own
access line, and uvicorn's warnings and errors go through Lia's logging (JSON lines).

uvicorn's httptools parser keeps whatever request line and headers a client sends, however
large; the worker refuses a request whose head passes MAX_HEAD_BYTES with a 431 (daphne, through
Twisted, refuses past the same 16 KB with a 400), bounds a chunked body's trailers the same way
and keeps them out of the request's headers.
"""

import argparse
import json
import signal
import socket
import sys
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lia.errors import error_body
from lia.shutdown import SHUTDOWN_GRACE_SECONDS, GracefulShutdown

APPLICATION = "lia.asgi:application"
MAX_HEAD_BYTES = 16 * 1024  # the request line and headers of one request: Twisted's limit too
HEAD_TOO_LARGE = json.dumps(
    error_body(f"Request header fields too large (limit {MAX_HEAD_BYTES} bytes)"), separators=(",", ":")
).encode()

logger = structlog.get_logger("lia.access")
server_logger = structlog.get_logger("lia.server")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head larger than MAX_HEAD_BYTES.

    httptools buffers a header line until it ends, so what arrives is counted as it arrives:
    every read that ends with a request's head still incomplete is part of that head (a body
    starts only after it), and a head that arrives whole is measured once parsed. After the
    head, reads that carry no body bytes (a chunked body's trailers, its framing) are counted
    the same way until body bytes come. A connection so holds at most the limit and one read.
    Trailers never join the request's headers (uvicorn would append them to the scope's)."""

    _head_bytes: int | None = 0  # received of the head in progress; None once it is complete
    _unframed = 0  # after the head: received since the last body bytes
    _body_in_read = False  # this read carried body bytes
    _begun_in_read = False  # a request began in this read
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        in_body = self._head_bytes is None
        self._body_in_read = self._begun_in_read = False
        super().data_received(data)
        if self._head_bytes is not None:
            self._head_bytes += len(data)
            self._refused |= self._head_bytes > MAX_HEAD_BYTES
        elif self._body_in_read or self._begun_in_read:
            self._unframed = 0
        elif in_body:
            self._unframed += len(data)
            self._refused |= self._unframed > MAX_HEAD_BYTES
        if self._refused and not self.transport.is_closing():
            self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._begun_in_read = 0, True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_bytes is not None:  # not a trailer
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes, self._unframed = None, 0
        if self._refused:
            return
        if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > MAX_HEAD_BYTES:
            self._refused = True  # answered once the parser returns; no request starts
            return
        super().on_headers_complete()
        # A response that gives up on a client that stopped reading drops the connection with
        # this (lia.handler.ABORT_EXTENSION): uvicorn has no message for that, and a response left
        # unfinished with the client still connected was an ERROR in its log.
        extensions = self.scope.setdefault("extensions", {})
        if extensions is not None:
            extensions["lia.abort_connection"] = self.transport.abort

    def on_body(self, body: bytes) -> None:
        self._body_in_read = True
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _should_upgrade(self) -> bool:
        return not self._refused and super()._should_upgrade()

    def _refuse(self) -> None:
        logger.warning(
            "security.headers_too_large", limit=MAX_HEAD_BYTES, peer=self.client[0] if self.client else "unknown"
        )
        # The 431 only where it can't be read as the answer to an earlier request still at work
        # (pipelined) or interrupt one being sent; else the connection just ends.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(HEAD_TOO_LARGE)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + HEAD_TOO_LARGE
            )
        self.transport.close()


class Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Said once per worker: the streams it ends each log chat.turn.client_disconnected.
        server_logger.info("server.shutdown", streams_ended=GracefulShutdown.disconnect_all())
        await super().shutdown(sockets)


def config(application: Any = APPLICATION, loop: str = "auto", backlog: int = 2048) -> uvicorn.Config:
    return uvicorn.Config(
        application,
        backlog=backlog,  # uvicorn calls listen() on the inherited socket again with it
        lifespan="off",  # Django has no lifespan support
        loop=loop,  # auto: uvloop when installed
        http=LimitedHttpToolsProtocol,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_SECONDS),
        # Idle keep-alive connections are kept longer than a load balancer's own idle timeout
        # (AWS ALB: 60 s), or it may reuse one the worker has just closed (a 502).
        timeout_keep_alive=75,
        log_config=None,  # Lia's logging (JSON lines, lia.logging) covers uvicorn's loggers too
        log_level="warning",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    parser.add_argument("--app", default=APPLICATION)
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--backlog", type=int, default=2048)
    args = parser.parse_args(argv)
    # uvicorn raises the stop signal again once it has shut down: a graceful stop exits 0 (and a
    # later signal no longer interrupts the last clean-up).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_quietly)
    Server(config(args.app, args.loop, args.backlog)).run(sockets=[socket.socket(fileno=args.fd)])


def _exit_quietly(*_: object) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(0)


if __name__ == "__main__":
    main()
