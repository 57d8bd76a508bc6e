"""One uvicorn worker serving Lia on an inherited, already listening socket
(`python -m bench.serve_uvicorn --fd N`): uvicorn's own `--fd` assumes a Unix socket."""

import argparse
import socket

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--app", default="lia.asgi:application")
    args = parser.parse_args()
    config = uvicorn.Config(
        args.app,
        lifespan="off",  # Django has no lifespan support
        loop=args.loop,
        http="auto",  # httptools when installed
        log_level="warning",
        access_log=False,  # Lia writes its own access line
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])


if __name__ == "__main__":
    main()
