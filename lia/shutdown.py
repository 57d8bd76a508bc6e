"""Graceful shutdown for HTTP requests in flight, chat streams above all (RELIABILITY 24).

On SIGTERM daphne cancels every open application instance and waits for them before it stops
the event loop. Django's `ASGIHandler.handle` does not pass that cancellation on: it is parked
in `asyncio.wait()` on its request task, which does not cancel what it waits on. The request
task (a chat stream's generator) is left running, the loop stops under it, its `finally` never
runs (the partial reply stays `streaming`), and the interpreter can crash collecting it at exit.

`GracefulShutdown` turns the server's cancellation into what Django already handles well: a
client disconnect. The pending `receive()` answers `http.disconnect`, Django cancels the request
task, the stream stores its partial reply as `interrupted` in its `finally`, and then the
request ends as a finished one (only a request still running after `grace` seconds passes the
cancellation on to the server: daphne waits for all of them with an asyncio.gather, which stops
waiting at the first cancelled one).

uvicorn cancels nothing at first: it lets requests in flight run for its graceful timeout, then
cancels them without waiting. Its worker (lia.uvicorn_worker) calls `disconnect_all()` as it
starts to shut down: every response already streaming (a chat stream) gets the same disconnect
at once, and so does any that starts later; requests still working on their answer finish it.
A stream ended this way gets its body's end from here, so the client sees the stream close; a
chat stream (Server-Sent Events) first gets an `error` event saying the server stopped its reply,
as any reply the server stops does (CONTRACT §7.12; found by an audit: its body just ended, with
neither `done` nor `error`, and the web client took the cut reply for a finished one).
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
# The last event of a chat stream the shutdown ended (its partial reply stored as interrupted).
SHUTDOWN_ERROR = "The server restarted and stopped this reply. Please send your message again."


class EventStream:
    """What a Server-Sent Events response has sent, seen from its body: how many events (each
    frame of Lia's has one `event:` line, and JSON data never holds a raw newline) and whether
    the last was a closing one (`done` or `error`, always a stream's last)."""

    def __init__(self) -> None:
        self.events = 0
        self.closed = False

    def sent(self, body: bytes) -> None:
        if events := body.count(b"\nevent: "):
            self.events += events
            self.closed = b"\nevent: done\n" in body or b"\nevent: error\n" in body

    def ending(self) -> bytes:
        """The frame that ends a stream the shutdown cut short: an `error` event with the next id."""
        from conversations.streaming import sse_event  # not at import: the server imports this before Django is set up

        return b"" if self.closed else sse_event(self.events + 1, "error", {"message": SHUTDOWN_ERROR})


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
        events: EventStream | None = None  # a Server-Sent Events response's

        async def send_noting(message: Message) -> None:
            nonlocal started, ended, events
            await send(message)
            if message["type"] == "http.response.start":
                started = True
                if _is_event_stream(message):
                    events = EventStream()
                if GracefulShutdown._shutting_down:
                    disconnect()
            elif message["type"] == "http.response.body":
                if events is not None:
                    events.sent(message.get("body", b""))
                if not message.get("more_body", False):
                    ended = True

        async def end_body() -> None:
            # The client is still there, waiting for the body's end (and an event stream's last
            # event); a failure to send is the client's having gone too.
            with contextlib.suppress(Exception):
                ending = events.ending() if events is not None else b""
                await send({"type": "http.response.body", "body": ending, "more_body": False})

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
            if not request.done():
                raise
            # Ended in time: finished, as the response is. Raising the cancellation on would end
            # daphne's wait for the other requests (its asyncio.gather stops at the first
            # cancelled one), and their clients' connections were cut before their ending.
            if started and not ended:
                await end_body()
            return
        finally:
            GracefulShutdown._in_flight.discard(disconnect_if_started)
        if stopping and started and not ended:
            await end_body()  # ended by disconnect_all()

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


def _is_event_stream(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and value.lower().startswith(b"text/event-stream")
        for name, value in start.get("headers", ())
    )
