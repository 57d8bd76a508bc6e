"""The chat turn as Server-Sent Events (CONTRACT §7.9-7.15).

`chat_turn_events` is the async generator behind the stream's StreamingHttpResponse. It holds
no database connection while the provider streams, never raises after the first byte (a
failure becomes an `error` event, the last one), and stores whatever the user saw: on
completion, on a provider failure (status failed) and when the client goes away (status
interrupted, saved in `finally`, and the cancellation re-raised).
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings

from conversations.models import TurnStatus
from conversations.selectors import conversation_has_turn_in_flight
from conversations.services import SentimentFold, TurnResult, TurnStart, turn_finish, turn_history
from llm import (
    ChatMessage,
    ChatOptions,
    Delta,
    Finish,
    LLMError,
    TextDelta,
    ThoughtDelta,
    resolve_provider,
)

logger = structlog.get_logger("lia.chat")

KEEPALIVE = b": keep-alive\n\n"
GENERIC_ERROR = "An error occurred processing your request."
TOO_LONG_ERROR = "The reply took too long and was stopped."
SAVE_TIMEOUT_SECONDS = 8.0  # under daphne's 10 s application_close_timeout


def sse_event(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    """One frame: id, event, a single line of compact UTF-8 JSON, a blank line; LF only."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {name}\ndata: {payload}\n\n".encode()


@dataclass
class TurnPlan:
    """Everything the stream needs, gathered (and validated) before the first byte."""

    turn: TurnStart
    text: str
    provider: str
    model: str
    options: ChatOptions
    log_context: dict[str, Any] = field(default_factory=dict)


@dataclass
class TurnProgress:
    reply: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    finish: Finish | None = None
    served_by: str | None = None
    started: float = field(default_factory=time.monotonic)
    first_token_ms: float | None = None

    def result(self, plan: TurnPlan, status: TurnStatus) -> TurnResult:
        usage = self.finish.usage if self.finish else None
        model_info: dict[str, Any] = {
            "provider": plan.provider,
            "model": plan.model,
            "thoughts": list(self.thoughts) or None,
        }
        if self.served_by and self.served_by != plan.provider:
            model_info["served_by"] = self.served_by
        if self.finish:
            model_info["finish_reason"] = self.finish.finish_reason
        if usage:
            model_info["usage"] = {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            }
        if self.first_token_ms is not None:
            model_info["latency_ms"] = self.first_token_ms
        return TurnResult(
            content="".join(self.reply),
            status=status,
            model_info=model_info,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )


class StreamTooLong(Exception):
    pass


async def _with_keepalive(
    source: AsyncIterator[Delta], *, interval: float, deadline: float
) -> AsyncIterator[Delta | bytes]:
    """Re-yield `source`, plus KEEPALIVE after `interval` seconds of silence.

    The source runs in its own task feeding a queue, so waiting on the queue can time out
    without cancelling the provider; cancelling the task closes the provider's stream (and so
    the upstream HTTP response) promptly, wherever it is parked.
    """
    queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for delta in source:
                queue.put_nowait(delta)
            queue.put_nowait(None)
        except Exception as exc:  # handed to the consumer, which decides what the user sees
            queue.put_nowait(exc)
        finally:
            await source.aclose()  # type: ignore[attr-defined]

    task = asyncio.create_task(pump())
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StreamTooLong()
            try:
                item = await asyncio.wait_for(queue.get(), timeout=min(interval, remaining))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise StreamTooLong() from None
                yield KEEPALIVE
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _wait_for_earlier_turns(plan: TurnPlan) -> None:
    """Serialise turns: the web client aborts and resends at once, so give the aborted reply
    (another request, maybe another process) a moment to be stored before reading the history."""
    turn = plan.turn
    deadline = time.monotonic() + settings.CHAT_TURN_WAIT_SECONDS
    since_at = datetime.fromtimestamp(time.time() - settings.CHAT_STREAM_MAX_SECONDS, tz=UTC)
    check = sync_to_async(conversation_has_turn_in_flight)
    while time.monotonic() < deadline:
        if not await check(conversation_id=turn.conversation_id, before_id=turn.user_message_id, since=since_at):
            break
        await asyncio.sleep(0.1)
    plan.turn = TurnStart(
        conversation_id=turn.conversation_id,
        user_message_id=turn.user_message_id,
        assistant_message_id=turn.assistant_message_id,
        history=await sync_to_async(turn_history)(
            conversation_id=turn.conversation_id, user_message_id=turn.user_message_id
        ),
        earlier_turn_in_flight=False,
    )


def _chat_messages(plan: TurnPlan) -> list[ChatMessage]:
    return [
        *(ChatMessage(role=role, content=content) for role, content in plan.turn.history),
        ChatMessage("user", plan.text),
    ]


async def _save(plan: TurnPlan, result: TurnResult, fold: SentimentFold | None = None) -> dict[str, Any] | None:
    return await sync_to_async(turn_finish)(turn=plan.turn, result=result, sentiment_fold=fold)


async def _save_after_disconnect(plan: TurnPlan, result: TurnResult) -> None:
    """Store the partial reply of a turn whose client went away. Shielded from a second
    cancellation and bounded, so the save finishes (or is given up and logged) in time."""
    try:
        await asyncio.wait_for(asyncio.shield(_save(plan, result)), SAVE_TIMEOUT_SECONDS)
    except BaseException:
        logger.exception(
            "chat.turn.save_failed",
            conversation_id=str(plan.turn.conversation_id),
            message_id=plan.turn.assistant_message_id,
        )


async def chat_turn_events(plan: TurnPlan) -> AsyncIterator[bytes]:
    event_ids = iter(range(1, 1_000_000_000))
    progress = TurnProgress()
    stored = False
    structlog.contextvars.bind_contextvars(conversation_id=str(plan.turn.conversation_id))

    def frame(name: str, data: dict[str, Any]) -> bytes:
        return sse_event(next(event_ids), name, data)

    try:
        yield frame(
            "start", {"conversation_id": str(plan.turn.conversation_id), "message_id": plan.turn.user_message_id}
        )
        try:
            resolved = resolve_provider(plan.provider, plan.model)
            progress.served_by = resolved.served_by
            if plan.turn.earlier_turn_in_flight:
                await _wait_for_earlier_turns(plan)
            deadline = progress.started + settings.CHAT_STREAM_MAX_SECONDS
            deltas = resolved.provider.stream(_chat_messages(plan), plan.options)
            async for item in _with_keepalive(deltas, interval=settings.CHAT_KEEPALIVE_SECONDS, deadline=deadline):
                if isinstance(item, bytes):
                    yield item
                elif isinstance(item, TextDelta):
                    if item.text:
                        if progress.first_token_ms is None:
                            progress.first_token_ms = round((time.monotonic() - progress.started) * 1000, 1)
                        progress.reply.append(item.text)
                        yield frame("chunk", {"content": item.text})
                elif isinstance(item, ThoughtDelta):
                    if item.text:
                        progress.thoughts.append(item.text)
                        yield frame("thought", {"content": item.text})
                elif isinstance(item, Finish):
                    progress.finish = item
        except LLMError as exc:
            logger.warning("chat.turn.provider_failed", error=type(exc).__name__, provider=plan.provider)
            await _save(plan, progress.result(plan, TurnStatus.FAILED))
            stored = True
            yield frame("error", {"message": exc.public_message})
            return
        except StreamTooLong:
            logger.warning("chat.turn.too_long", seconds=settings.CHAT_STREAM_MAX_SECONDS)
            await _save(plan, progress.result(plan, TurnStatus.INTERRUPTED))
            stored = True
            yield frame("error", {"message": TOO_LONG_ERROR})
            return

        sentiment_data = await _save(plan, progress.result(plan, TurnStatus.COMPLETE))
        stored = True
        sentiment_data = sentiment_data or {}
        yield frame(
            "sentiment", {"message": sentiment_data.get("message"), "cumulative": sentiment_data.get("cumulative")}
        )
        yield frame("done", {"finish_reason": "stop"})
    except Exception:
        # Never raise after the first byte: daphne would leave the client hanging.
        logger.exception("chat.turn.failed")
        if not stored:
            stored = True
            try:
                await _save(plan, progress.result(plan, TurnStatus.FAILED))
            except Exception:
                logger.exception("chat.turn.save_failed", message_id=plan.turn.assistant_message_id)
        yield frame("error", {"message": GENERIC_ERROR})
    finally:
        if not stored:
            # The client went away (CancelledError at an await, or GeneratorExit at a yield).
            logger.info("chat.turn.client_disconnected", reply_chars=sum(map(len, progress.reply)))
            await _save_after_disconnect(plan, progress.result(plan, TurnStatus.INTERRUPTED))
