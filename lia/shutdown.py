"""Graceful shutdown for HTTP requests in flight, chat streams above all (RELIABILITY 24).

On SIGTERM daphne cancels every open application instance and waits for them before it stops
the event loop. Django's `ASGIHandler.handle` does not pass that cancellation on: it is parked
in `asyncio.wait()` on its request task, which does not cancel what it waits on. The request
task (a chat stream's generator) is left running, the loop stops under it, its `finally` never
runs (the partial reply stays `streaming`), and the interpreter can crash collecting it at exit.

`GracefulShutdown` turns the server's cancellation into what Django already handles well: a
client disconnect. The pending `receive()` answers `http.disconnect`, Django cancels the request
task, the stream stores its partial reply as `interrupted` in its `finally`, and only then (or
after `grace` seconds) does the cancellation go on to the server.
"""

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DISCONNECT: Message = {"type": "http.disconnect"}


class GracefulShutdown:
    def __init__(self, app: ASGIApp, *, grace: float) -> None:
        self.app = app
        self.grace = grace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stopping = asyncio.Event()

        async def receive_or_disconnect() -> Message:
            if stopping.is_set():
                return DISCONNECT
            received = asyncio.ensure_future(receive())
            stopped = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait({received, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (received, stopped):
                    if not waiter.done():
                        waiter.cancel()
            if received.done() and not received.cancelled():
                return received.result()
            return DISCONNECT

        request = asyncio.ensure_future(self.app(scope, receive_or_disconnect, send))
        try:
            await asyncio.shield(request)
        except asyncio.CancelledError:
            if request.done():
                raise
            # The server is shutting down: let the request clean up as after a disconnect.
            stopping.set()
            await asyncio.wait({request}, timeout=self.grace)
            if not request.done():
                request.cancel()
            raise
