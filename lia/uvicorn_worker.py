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
"""

import argparse
import signal
import socket
import sys

import uvicorn

from lia.shutdown import SHUTDOWN_GRACE_SECONDS, GracefulShutdown

APPLICATION = "lia.asgi:application"


class Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        GracefulShutdown.disconnect_all()
        await super().shutdown(sockets)


def config(application: str = APPLICATION, loop: str = "auto", backlog: int = 2048) -> uvicorn.Config:
    return uvicorn.Config(
        application,
        backlog=backlog,  # uvicorn calls listen() on the inherited socket again with it
        lifespan="off",  # Django has no lifespan support
        loop=loop,  # auto: uvloop when installed
        http="auto",  # httptools when installed
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
