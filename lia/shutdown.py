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

uvicorn cancels nothing at first: it lets requests in flight run for its graceful timeout, then
cancels them without waiting. Its worker (lia.uvicorn_worker) calls `disconnect_all()` as it
starts to shut down: every response already streaming (a chat stream) gets the same disconnect
at once, and so does any that starts later; requests still working on their answer finish it.
A stream ended this way gets its body's end from here, so the client sees the stream close.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ClassVar

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DISCONNECT: Message = {"type": "http.disconnect"}
SHUTDOWN = "lia.shutdown"  # the message of the cancellation that stands for a disconnect
# Within daphne's 10 s application_close_timeout; a stream's own final save gives up at 8 s.
SHUTDOWN_GRACE_SECONDS = 9.0


class GracefulShutdown:
    """`grace`: how long requests get to finish after the disconnect. `repeat_after`: when one
    is still running after that long, it is cancelled again (then every second): a cancellation
    can be lost (on Python 3.11 `asyncio.wait_for` swallows one that lands just as what it
    waits for completes), and a stream that missed it would run to its end, past the grace,
    and be killed unsaved."""

    # For each request in flight in this process: disconnect it if its response has started.
    _in_flight: ClassVar[set[Callable[[], bool]]] = set()
    _shutting_down: ClassVar[bool] = False  # disconnect_all() was called

    def __init__(self, app: ASGIApp, *, grace: float, repeat_after: float = 3.0) -> None:
        self.app = app
        self.grace = grace
        self.repeat_after = repeat_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stopping = False
        receiving: asyncio.Task[Any] | None = None  # the task parked in receive(), if any

        async def receive_or_disconnect() -> Message:
            nonlocal receiving
            if stopping:
                return DISCONNECT
            receiving = asyncio.current_task()
            try:
                return await receive()
            except asyncio.CancelledError as exc:
                if not (stopping and exc.args == (SHUTDOWN,)):
                    raise
                # Ours, answered with a disconnect; unless Django cancelled the task as well.
                if receiving.uncancel() > 0:  # type: ignore[union-attr]
                    raise
                return DISCONNECT
            finally:
                receiving = None

        def disconnect() -> None:
            # The task waiting for the client's next message (Django's disconnect listener)
            # gets a disconnect; so does any later receive().
            nonlocal stopping
            stopping = True
            if receiving is not None:
                receiving.cancel(SHUTDOWN)

        started = ended = False

        async def send_noting(message: Message) -> None:
            nonlocal started, ended
            await send(message)
            if message["type"] == "http.response.start":
                started = True
                if GracefulShutdown._shutting_down:
                    disconnect()
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                ended = True

        def disconnect_if_started() -> bool:
            if started and not ended:
                disconnect()
                return True
            return False

        request = asyncio.ensure_future(self.app(scope, receive_or_disconnect, send_noting))
        GracefulShutdown._in_flight.add(disconnect_if_started)
        try:
            await asyncio.shield(request)
        except asyncio.CancelledError:
            if request.done():
                raise
            # The server is shutting down: let the request clean up as after a disconnect.
            disconnect()
            await self._wind_down(request)
            raise
        finally:
            GracefulShutdown._in_flight.discard(disconnect_if_started)
        if stopping and started and not ended:
            # Ended by disconnect_all(): the client is still there, waiting for the body's end.
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    @classmethod
    def disconnect_all(cls) -> int:
        """End every response in flight in this process that has started (a chat stream: it
        stores its partial reply, as under daphne's cancellation) as a client disconnect, and
        every one that starts from now on; how many were ended now."""
        cls._shutting_down = True
        return sum(disconnect_if_started() for disconnect_if_started in list(cls._in_flight))

    async def _wind_down(self, request: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        wait = self.repeat_after
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.wait({request}, timeout=min(wait, remaining))
            if request.done():
                return
            request.cancel()  # Django's handler passes this on to the request task it awaits
            wait = 1.0
        request.cancel()
