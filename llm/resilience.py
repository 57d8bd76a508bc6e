"""Timeouts, retries and prompt cleanup around a vendor stream, shared by the SDK adapters.

`guarded_stream` runs the adapter's own delta generator in a pump task that feeds a queue,
and reads the queue with the first-token, idle and total timeouts. Cancelling the pump task
closes the SDK stream and its HTTP response on both SDKs, even when our consumer is cancelled
while parked elsewhere; a plain `aclose()` of the Gemini iterator does not (ECOSYSTEM §2.7).

Retries (bounded, exponential backoff, a vendor's Retry-After honoured up to a cap) happen
only before the first delta: after that the user has seen text and a new attempt would
repeat it.
"""

import asyncio
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from django.conf import settings

from llm.exceptions import LLMError, ProviderRateLimited, ProviderTimeout
from llm.interface import Delta

logger = structlog.get_logger("llm")

T = TypeVar("T")
Classify = Callable[[BaseException], LLMError]


@dataclass(frozen=True)
class CallPolicy:
    connect_timeout: float = 5.0
    first_token_timeout: float = 60.0
    idle_timeout: float = 30.0
    total_timeout: float = 300.0
    max_retries: int = 2
    retry_base_delay: float = 0.5
    max_retry_wait: float = 10.0

    @classmethod
    def from_settings(cls) -> "CallPolicy":
        return cls(
            connect_timeout=settings.LLM_CONNECT_TIMEOUT,
            first_token_timeout=settings.LLM_FIRST_TOKEN_TIMEOUT,
            idle_timeout=settings.LLM_IDLE_TIMEOUT,
            total_timeout=settings.LLM_TOTAL_TIMEOUT,
            max_retries=settings.LLM_MAX_RETRIES,
            retry_base_delay=settings.LLM_RETRY_BASE_DELAY,
            max_retry_wait=settings.LLM_MAX_RETRY_WAIT,
        )

    def retry_delay(self, error: LLMError, attempt: int, remaining: float) -> float | None:
        """Seconds to wait before retry number `attempt` (1-based), or None to give up."""
        if not error.retryable or attempt > self.max_retries:
            return None
        retry_after = error.retry_after if isinstance(error, ProviderRateLimited) else None
        if retry_after is not None:
            delay = retry_after
        else:
            delay = self.retry_base_delay * 2 ** (attempt - 1) * random.uniform(0.75, 1.0)  # noqa: S311
        if delay > self.max_retry_wait or delay >= remaining:
            return None
        return delay


_END = object()


class _Pump:
    """Iterate `source` in its own task, handing items (or its exception) over a queue."""

    def __init__(self, source: AsyncIterator[Delta]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(source))

    async def _run(self, source: AsyncIterator[Delta]) -> None:
        try:
            async for item in source:
                await self.queue.put(item)
        except Exception as exc:
            await self.queue.put(_Failed(exc))
        else:
            await self.queue.put(_END)

    async def get(self, seconds: float) -> Any:
        # Per delta: an item already waiting is taken at once, and waiting uses asyncio.timeout,
        # which (unlike wait_for on 3.11) creates no task per call.
        if not self.queue.empty():
            return self.queue.get_nowait()
        async with asyncio.timeout(max(seconds, 0)):
            return await self.queue.get()

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@dataclass(frozen=True)
class _Failed:
    exc: Exception


async def guarded_stream(
    open_stream: Callable[[], AsyncIterator[Delta]],
    *,
    policy: CallPolicy,
    classify: Classify,
    provider: str,
    model: str,
) -> AsyncGenerator[Delta, None]:
    """Deltas from `open_stream()` under `policy`; every failure is raised as an LLMError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.total_timeout
    attempt = 0
    started = False
    while True:
        pump = _Pump(open_stream())
        try:
            while True:
                remaining = deadline - loop.time()
                wait = policy.idle_timeout if started else policy.first_token_timeout
                try:
                    item = await pump.get(min(wait, remaining))
                except TimeoutError:
                    which = "total" if remaining <= wait else ("idle" if started else "first_token")
                    raise ProviderTimeout(
                        f"{provider}: no data within the {which} timeout", provider=provider
                    ) from None
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise _as_llm_error(item.exc, classify)
                started = True
                yield item
        except LLMError as error:
            attempt += 1
            delay = None if started else policy.retry_delay(error, attempt, deadline - loop.time())
            if delay is None:
                logger.warning(
                    "llm.call.failed", provider=provider, model=model, error=type(error).__name__, detail=str(error)
                )
                raise
            logger.info("llm.call.retry", provider=provider, model=model, attempt=attempt, delay=round(delay, 3))
        finally:
            await pump.close()
        await asyncio.sleep(delay)


async def guarded_call(
    call: Callable[[], Awaitable[T]], *, policy: CallPolicy, classify: Classify, provider: str, model: str
) -> T:
    """One non-streamed call under the total timeout, with the same retry rule."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.total_timeout
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0)):
                try:
                    return await call()
                except Exception as exc:
                    raise _as_llm_error(exc, classify) from exc
        except TimeoutError:
            raise ProviderTimeout(f"{provider}: no answer within the total timeout", provider=provider) from None
        except LLMError as error:
            attempt += 1
            delay = policy.retry_delay(error, attempt, deadline - loop.time())
            if delay is None:
                logger.warning(
                    "llm.call.failed", provider=provider, model=model, error=type(error).__name__, detail=str(error)
                )
                raise
            logger.info("llm.call.retry", provider=provider, model=model, attempt=attempt, delay=round(delay, 3))
        await asyncio.sleep(delay)


def _as_llm_error(exc: BaseException, classify: Classify) -> LLMError:
    if isinstance(exc, LLMError):
        return exc
    error = classify(exc)
    error.__cause__ = exc
    return error
