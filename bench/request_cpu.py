"""CPU per request of Lia's ASGI stack (handler, middleware, thread hops), in-process:
`python -m bench.request_cpu [--path /health/live] [--drop MIDDLEWARE ...]`.

The request is sent straight to the ASGI application, so no server, socket or client is
measured, and the process's CPU time (its threads included) per request is steady enough to
compare middleware lists: `--drop django.middleware.csrf.CsrfViewMiddleware` runs without it.
"""

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any


async def measure(path: str, requests: int) -> float:
    from lia.handler import ASGIHandler

    application = ASGIHandler()  # what lia.asgi serves, without the outer ASGI wrappers
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def one() -> None:
        delivered = False
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)  # no disconnect: the response ends first
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await application(dict(scope), receive, send)
        if statuses != [200]:
            raise RuntimeError(f"{path} answered {statuses}")

    for _ in range(200):  # warm-up
        await one()
    started = time.process_time()
    for _ in range(requests):
        await one()
    return (time.process_time() - started) / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", default="/health/live")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--drop", nargs="*", default=[], help="middleware paths to leave out")
    args = parser.parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = "lia.settings.test"
    import django

    django.setup()
    from django.conf import settings

    logging.getLogger().setLevel(logging.WARNING)  # as the benchmark's server runs (LOG_LEVEL=WARNING)
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name not in set(args.drop)]
    cpu_ms = asyncio.run(measure(args.path, args.requests))
    print(
        json.dumps({"path": args.path, "middleware": len(settings.MIDDLEWARE), "cpu_ms_per_request": round(cpu_ms, 3)})
    )


if __name__ == "__main__":
    main()
