"""Django's ASGI handler, with a request thread that a chat stream gives back while it streams.

Under ASGI, Django runs a request's sync code (its signals, sync views such as DRF's, sync
middleware) on a thread of the request's own, through asgiref's ThreadSensitiveContext, and
keeps that thread until the response has been sent: for a chat stream, the whole reply. A
thousand open streams were a thousand idle threads, each with its stack, its thread state and
its own database wrapper (README "Performance"), and each request paid for a second thread that
asgiref starts only to join the first.

Here the request's thread is a `RequestThread`: taken on first use, as before, given back once
a streaming response starts to be sent, and kept for the next requests. The stream's own
database visits run on a small shared pool (conversations.streaming.released), and what Django
still runs at the end (request_finished, closing the response) takes a thread again for a moment.

A streaming response may bound how long one send waits for the client (`send_timeout`): a
client still connected but no longer reading fills the connection's buffers, and then the
server's send waits (uvicorn waits for its buffer to drain; daphne buffers without bound). The
stream is held at its yield, where neither its time cap nor its keep-alives can end it, until
TCP gives up, minutes later. A send that waits longer ends the response as a disconnect does
(the stream is closed, and stores what it has), and the server closes the connection.

Django's own request_started receivers (reset_queries, close_old_connections) are sync, so
`request_started.asend` ran them in a thread hop of their own before anything else (~0.4 ms of
every request's latency here). What they tend is the request thread's database connection, so
they run there instead, first thing in the request's first sync call; a request that makes
none (an async view) has no connection of its own to tend.
"""

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, ClassVar

import structlog
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.handlers import asgi
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponseBase

_request_thread: ContextVar["RequestThread"] = ContextVar("lia_request_thread")
# The server's way to drop the request's connection, where it offers one (lia.uvicorn_worker puts
# it in the scope's extensions): a response that gave up on a stalled client (ClientStalled) has
# no way to end its body, and uvicorn logged an ERROR ("ASGI callable returned without completing
# response") for every such client.
ABORT_EXTENSION = "lia.abort_connection"
_abort_connection: ContextVar[Callable[[], None] | None] = ContextVar("lia_abort_connection", default=None)
logger = structlog.get_logger("lia.access")
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ClientStalled(Exception):
    """A send to the client waited longer than its response's `send_timeout`."""


class BoundedSend:
    """`send`, raising ClientStalled when one message waits more than `seconds` to be taken.

    One timer per response, checking now and then, not one per send: a chat reply is hundreds
    of sends, and an `asyncio.timeout` around each cost ~7 us of the event loop's time, forty
    times the send itself. Used from the task that sends; `close()` when done."""

    def __init__(self, send: Send, seconds: float) -> None:
        self.send = send
        self.seconds = seconds
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.since: float | None = None  # when the send under way began
        self.stalled = False
        self.timer = self.loop.call_later(seconds, self._check)

    async def __call__(self, message: dict[str, Any]) -> None:
        self.since = self.loop.time()
        try:
            await self.send(message)
        except asyncio.CancelledError:
            # Ours, unless the task was cancelled for another reason too (the client left).
            if self.stalled and self.task is not None and self.task.uncancel() == 0:
                raise ClientStalled() from None
            raise
        finally:
            self.since = None

    def _check(self) -> None:
        waited = 0.0 if self.since is None else self.loop.time() - self.since
        if waited >= self.seconds and self.task is not None:
            self.stalled = True
            self.task.cancel()  # lands in the send under way: the task is parked there
        else:
            self.timer = self.loop.call_later(self.seconds - waited, self._check)

    def close(self) -> None:
        self.timer.cancel()


class RequestThread(Executor):
    """One request's thread for its thread-sensitive calls (asgiref runs them one at a time):
    taken when first needed, given back by `release()`, taken again if needed after that.

    Threads are kept for the next requests (up to KEEP_IDLE of them), as a WSGI server keeps
    its threads: starting one blocks the event loop until the new thread runs, which under
    load can be a whole GIL switch interval. Only the event loop's thread calls these methods."""

    KEEP_IDLE = 32
    _idle: ClassVar[list[ThreadPoolExecutor]] = []

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._started = False
        self.last: Future[Any] | None = None  # the latest call: the view's, once it has been called

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._executor is None:
            idle = RequestThread._idle
            self._executor = idle.pop() if idle else ThreadPoolExecutor(1, thread_name_prefix="lia-request")
        if not self._started:
            self._started = True
            self.last = self._executor.submit(_request_started_then, fn, *args, **kwargs)
        else:
            self.last = self._executor.submit(fn, *args, **kwargs)
        return self.last

    def release(self) -> None:
        """Give the thread back; it is idle (its caller awaits each call it makes)."""
        if self._executor is not None:
            if len(RequestThread._idle) < self.KEEP_IDLE:
                RequestThread._idle.append(self._executor)
            else:
                self._executor.shutdown(wait=False)
            self._executor = None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release()


def _request_started_then(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Django's request_started receivers, in the request thread, then the request's first call."""
    reset_queries()
    close_old_connections()
    return fn(*args, **kwargs)


class ASGIHandler(asgi.ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # RequestThread runs them (see the module's docstring).
        signals.request_started.disconnect(reset_queries)
        signals.request_started.disconnect(close_old_connections)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        thread = RequestThread()
        token = _request_thread.set(thread)
        abort_token = _abort_connection.set((scope.get("extensions") or {}).get(ABORT_EXTENSION))
        try:
            # Ours, so Django's own ThreadSensitiveContext inside is a no-op that uses it.
            async with ThreadSensitiveContext(executor=thread):
                await super().__call__(scope, receive, send)
        finally:
            thread.release()
            _abort_connection.reset(abort_token)
            _request_thread.reset(token)

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return await super().run_get_response(request)
        except asyncio.CancelledError:
            await _abandon_dropped_response()
            raise

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        if response.streaming:
            thread = _request_thread.get(None)
            if thread is not None:
                thread.release()
            if send_timeout := getattr(response, "send_timeout", None):
                send = BoundedSend(send, send_timeout)
        try:
            await super().send_response(response, send)
        except ClientStalled:
            logger.warning("http.client_stalled", seconds=send.seconds)
            if (abort := _abort_connection.get()) is not None:
                abort()  # the body can't be ended: the connection is dropped, as the client's leaving would
            await _close_stream(response)  # and the server closes the connection
        except asyncio.CancelledError:  # the client left while a send was under way
            await _close_stream(response)
            raise
        finally:
            if isinstance(send, BoundedSend):
                send.close()


async def _close_stream(response: HttpResponseBase) -> None:
    """Close a streaming response's own iterator now, where it has a way to (`aclose_stream`):
    Django's handler closes only the wrappers it iterates, and an iterator parked at its yield
    would be closed whenever the garbage collector gets to it."""
    aclose_stream = getattr(response, "aclose_stream", None)
    if aclose_stream is not None:
        await aclose_stream()


async def _abandon_dropped_response() -> None:
    """When the client leaves while a sync view runs, Django cancels the request and drops
    whatever the view returns, unclosed; but the view can't be stopped, and runs on to its end (a
    chat turn's write-ahead commits). So the view's call is waited for, and a response it
    returned that has to know it was dropped is told (`abandon()`): a chat turn's ends the turn
    it wrote ahead (conversations.streaming.ChatTurnResponse). Not `close()`, which would send
    request_finished a second time."""
    thread = _request_thread.get(None)
    call = thread.last if thread is not None else None
    if call is None:
        return
    await asyncio.wait([asyncio.wrap_future(call)])
    abandon = None if call.cancelled() or call.exception() is not None else getattr(call.result(), "abandon", None)
    if abandon is not None:
        await sync_to_async(abandon)()
