"""Timeouts, retries and prompt cleanup around a vendor stream, shared by the SDK adapters.

`guarded_stream` reads the adapter's own delta generator under the first-token, idle and total
timeouts, and raises every failure as an LLMError. A timeout cancels the read it bounds, which
closes the SDK stream and its HTTP response (the turn ends there anyway). Gemini's SDK iterator
does not close its response on a plain `aclose()` when its consumer is parked elsewhere
(ECOSYSTEM §2.7), so the Gemini adapter reads it through `pumped`, a `Pump`: in a task of its
own, which closing cancels. (The chat's keep-alive uses a Pump too.) The OpenAI SDK's stream
closes either way and is read directly: one task and one queue less per reply.

Retries (bounded, exponential backoff, a vendor's Retry-After honoured up to a cap) happen
only before the first delta: after that the user has seen text and a new attempt would
repeat it.
"""

import asyncio
import random
from collections import deque
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


@dataclass(frozen=True)
class _Failed:
    exc: Exception


class Pump:
    """`source` iterated in a task of its own, its items handed over one at a time.

    The consumer may stop waiting (a timeout, to send a keep-alive) without touching the
    source, and `close()` cancels the task, which closes an SDK stream wherever it is parked:
    the only way Gemini's closes its HTTP response (ECOSYSTEM §2.7). One deque and a future
    where an asyncio.Queue has three deques: every open chat stream holds one.
    """

    __slots__ = ("_items", "_task", "_waiter")

    def __init__(self, source: AsyncIterator[T]) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task = asyncio.create_task(self._run(source))

    async def _run(self, source: AsyncIterator[T]) -> None:
        try:
            async for item in source:
                self._put(item)
            self._put(_END)
        except Exception as exc:  # handed to the consumer
            self._put(_Failed(exc))
        finally:
            if hasattr(source, "aclose"):
                await source.aclose()

    def _put(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        """The next item; what the source raised; StopAsyncIteration at its end. Cancelling
        the wait loses nothing."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items[0]
        if item is _END:
            raise StopAsyncIteration
        self._items.popleft()
        if isinstance(item, _Failed):
            raise item.exc
        return item

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def pumped(source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Re-yield `source` through a Pump that closing this generator closes."""
    pump = Pump(source)
    try:
        while True:
            try:
                item = await pump.get()
            except StopAsyncIteration:
                return
            yield item
    finally:
        await pump.close()


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
        source = open_stream()
        try:
            while True:
                remaining = deadline - loop.time()
                wait = policy.idle_timeout if started else policy.first_token_timeout
                try:
                    async with asyncio.timeout(max(min(wait, remaining), 0)):
                        item = await anext(source)  # type: ignore[call-overload]
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    which = "total" if remaining <= wait else ("idle" if started else "first_token")
                    raise ProviderTimeout(
                        f"{provider}: no data within the {which} timeout", provider=provider
                    ) from None
                except LLMError:
                    raise
                except Exception as exc:
                    raise _as_llm_error(exc, classify) from exc
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
            await source.aclose()  # type: ignore[attr-defined]
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
