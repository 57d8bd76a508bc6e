"""Django's ASGI handler, with a request thread that a chat stream gives back while it streams.

Under ASGI, Django runs a request's sync code (its signals, sync views such as DRF's, sync
middleware) on a thread of the request's own, through asgiref's ThreadSensitiveContext, and
keeps that thread until the response has been sent: for a chat stream, the whole reply. A
thousand open streams were a thousand idle threads, each with its stack, its thread state and
its own database wrapper (README "Performance"), and each request paid for a second thread that
asgiref starts only to join the first.

Here the request's thread is a `RequestThread`: started on first use, as before, and let go
once a streaming response starts to be sent. The stream's own database visits run on a small
shared pool (conversations.streaming.released), and what Django still runs at the end
(request_finished, closing the response) starts a fresh thread for a moment.
"""

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers import asgi
from django.http import HttpResponseBase

_request_thread: ContextVar["RequestThread"] = ContextVar("lia_request_thread")


class RequestThread(Executor):
    """One request's thread for its thread-sensitive calls (asgiref runs them one at a time):
    started when first needed, ended by `release()`, started again if needed after that."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lia-request")
        return self._executor.submit(fn, *args, **kwargs)

    def release(self) -> None:
        """Let the thread end once it is idle (it is: its caller awaits each call it makes)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release()


class ASGIHandler(asgi.ASGIHandler):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        thread = RequestThread()
        token = _request_thread.set(thread)
        try:
            # Ours, so Django's own ThreadSensitiveContext inside is a no-op that uses it.
            async with ThreadSensitiveContext(executor=thread):
                await super().__call__(scope, receive, send)
        finally:
            thread.release()
            _request_thread.reset(token)

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        if response.streaming:
            thread = _request_thread.get(None)
            if thread is not None:
                thread.release()
        await super().send_response(response, send)
