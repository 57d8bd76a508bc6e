"""The chat turn as Server-Sent Events (CONTRACT §7.9-7.15).

`chat_turn_events` is the async generator behind the stream's response (`ChatTurnResponse`).
It holds no database connection while the provider streams, never raises after the first byte
(a failure becomes an `error` event, the last one), and stores whatever the user saw: on
completion, on a provider failure (status failed) and when the client goes away (status
interrupted, saved in `finally`, and the cancellation re-raised; or, when it goes away before
the stream began, by the response: `ChatTurnResponse.abandon`).
"""

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import StreamingHttpResponse

from conversations.exceptions import ConversationGone
from conversations.models import TurnStatus
from conversations.selectors import conversation_has_turn_in_flight
from conversations.services import (
    SentimentFold,
    TurnResult,
    TurnStart,
    heartbeat_cutoff,
    turn_checkpoint,
    turn_finish,
    turn_history,
    turn_supersede_earlier,
)
from llm import (
    ChatMessage,
    ChatOptions,
    Delta,
    Finish,
    LLMError,
    Provider,
    Pump,
    ResolvedProvider,
    TextDelta,
    ThoughtDelta,
    resolve_provider,
)
from sentiment import (
    LLM_SEPARATE_METHOD,
    STRUCTURED_INSTRUCTIONS,
    STRUCTURED_METHOD,
    STRUCTURED_SCHEMA,
    CumulativeState,
    LLMJsonCall,
    Sentiment,
    StructuredReplyDecoder,
    analyze_message,
    fold_cumulative,
    valid_unicode,
)

logger = structlog.get_logger("lia.chat")

KEEPALIVE = b": keep-alive\n\n"
GENERIC_ERROR = "An error occurred processing your request."
TOO_LONG_ERROR = "The reply took too long and was stopped."
SUPERSEDED_ERROR = "A newer message in this conversation replaced this reply."
GONE_ERROR = "This conversation was deleted."
SAVE_TIMEOUT_SECONDS = 8.0  # under daphne's 10 s application_close_timeout


@cache
def database_threads() -> ThreadPoolExecutor:
    """The threads open streams visit the database on: as many as the pool has connections
    (more could only wait for one), shared by every stream of the process."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    size = pool.get("max_size", 10) if isinstance(pool, dict) else 10
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="lia-db")


def released(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (sync, touching the database) made awaitable, giving its pooled connection back as
    soon as it returns: between its short database visits an open stream holds no connection
    and no thread. (Django would otherwise keep the request thread, and its connection, until
    the response ends.) Each call is whole (its own transaction), so any thread will do."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(call, thread_sensitive=False, executor=database_threads())


_SURROGATE = re.compile("[\ud800-\udfff]")


class SurrogateMender:
    """A provider's text as valid Unicode, delta by delta. JSON can escape a character beyond
    the BMP as two UTF-16 surrogates, and a provider's stream can cut between them, so a delta
    may end with the first half and the next start with the second: the pair is put together
    again, and a surrogate with no partner becomes U+FFFD (found by an audit: an unpaired one
    could be neither sent nor stored, and cost the reply)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""  # a high surrogate that ended the last delta

    def mend(self, text: str) -> str:
        if self._held:
            text, self._held = self._held + text, ""
        elif text.isascii() or _SURROGATE.search(text) is None:
            return text
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        return valid_unicode(text)

    def rest(self) -> str:
        """What is held back, once no partner can come."""
        held, self._held = self._held, ""
        return "\ufffd" if held else ""


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
    sentiment_method: str
    # Set as chat_turn_events begins: from then on the stream stores the reply, however it ends.
    begun: bool = False


@dataclass
class TurnProgress:
    reply: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    finish: Finish | None = None
    served_by: str | None = None
    started: float = field(default_factory=time.monotonic)
    first_token_ms: float | None = None
    # Why the stream must stop, as its heartbeat found: a later turn took over (TurnSuperseded),
    # or the conversation was deleted (ConversationGone). Raised at the stream's next item.
    stop_with: Exception | None = None

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


class TurnSuperseded(Exception):
    pass


async def _with_keepalive(
    source: AsyncIterator[Delta], *, interval: float, deadline: float
) -> AsyncIterator[Delta | bytes]:
    """Re-yield `source`, plus KEEPALIVE after `interval` seconds of silence.

    The source runs in a Pump, so waiting for it can time out without cancelling the provider;
    closing the pump closes the provider's stream (and so the upstream HTTP response) promptly,
    wherever it is parked.
    """
    pump = Pump(source)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StreamTooLong()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation (the
                # client's disconnect) that lands in the same loop turn as the item it awaits.
                async with asyncio.timeout(min(interval, remaining)):
                    item = await pump.get()
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise StreamTooLong() from None
                yield KEEPALIVE
                continue
            except StopAsyncIteration:
                return
            yield item
    finally:
        await pump.close()


async def _wait_for_earlier_turns(plan: TurnPlan) -> None:
    """Serialise turns: the web client aborts and resends at once, so give the aborted reply
    (another request, maybe another process) a moment to be stored before reading the history."""
    turn = plan.turn
    deadline = time.monotonic() + settings.CHAT_TURN_WAIT_SECONDS
    check = released(conversation_has_turn_in_flight)
    while time.monotonic() < deadline:
        if not await check(
            conversation_id=turn.conversation_id, before_id=turn.user_message_id, alive_since=heartbeat_cutoff()
        ):
            break
        await asyncio.sleep(0.1)
    # What is still streaming (its client never aborted) is superseded, not streamed beside; and
    # a later turn sent meanwhile may have superseded this one.
    if not await released(turn_supersede_earlier)(turn=turn):
        raise TurnSuperseded()
    plan.turn = TurnStart(
        conversation_id=turn.conversation_id,
        user_message_id=turn.user_message_id,
        assistant_message_id=turn.assistant_message_id,
        history=await released(turn_history)(
            conversation_id=turn.conversation_id, user_message_id=turn.user_message_id
        ),
        earlier_turn_in_flight=False,
    )


def _chat_messages(plan: TurnPlan) -> list[ChatMessage]:
    return [
        *(ChatMessage(role=role, content=content) for role, content in plan.turn.history),
        ChatMessage("user", plan.text),
    ]


async def _save(
    plan: TurnPlan, result: TurnResult, fold: SentimentFold | None = None, *, within: float | None = None
) -> dict[str, Any] | None:
    """turn_finish, retried with backoff for up to `within` seconds (CHAT_SAVE_RETRY_SECONDS)
    while the database is unreachable (restart, failover, exhausted pool), each attempt on a
    fresh connection. The waits between attempts hold no thread: the streams of a process share
    a few (`database_threads`), and one stream's outage must not stall the others' saves."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (settings.CHAT_SAVE_RETRY_SECONDS if within is None else within)
    finish = released(turn_finish)
    delay = 0.2
    while True:
        try:
            return await finish(turn=plan.turn, result=result, sentiment_fold=fold)
        except (OperationalError, InterfaceError) as exc:
            if loop.time() + delay > deadline:
                logger.error(
                    "chat.turn.save_gave_up",
                    conversation_id=str(plan.turn.conversation_id),
                    message_id=plan.turn.assistant_message_id,
                    error=type(exc).__name__,
                )
                raise
            logger.warning("chat.turn.save_retry", message_id=plan.turn.assistant_message_id, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


# Final saves under way, held here: a client that leaves doesn't stop them (asyncio keeps only
# weak references to tasks).
_final_saves: set[asyncio.Task[dict[str, Any] | None]] = set()


def _final_save(
    plan: TurnPlan, result: TurnResult, fold: SentimentFold | None = None
) -> "asyncio.Task[dict[str, Any] | None]":
    """Start the turn's one final save in a task of its own: a client that leaves while it runs
    doesn't stop it, and the stored outcome stays this one (not `interrupted` on top of it).
    Its failure is logged by `_save`; nobody may be left to read it."""
    task = asyncio.ensure_future(_save(plan, result, fold))
    _final_saves.add(task)
    task.add_done_callback(_final_saves.discard)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


async def _keepalive_until(waiting: "asyncio.Future[Any]") -> AsyncIterator[bytes]:
    """KEEPALIVE every CHAT_KEEPALIVE_SECONDS until `waiting` is done, which leaving doesn't
    cancel. The reply's last steps (its sentiment, its save, retried through a database blip)
    can take longer than a proxy's read timeout, which only the keep-alive interval bounds."""
    while not waiting.done():
        done, _ = await asyncio.wait({waiting}, timeout=settings.CHAT_KEEPALIVE_SECONDS)
        if not done:
            yield KEEPALIVE


async def _save_after_disconnect(plan: TurnPlan, result: TurnResult) -> None:
    """Store the partial reply of a turn whose client went away. Shielded from a second
    cancellation and bounded, so the save finishes (or is given up and logged) in time; the
    last checkpoint and the sweep cover what this can't."""
    try:
        save = _save(plan, result, within=SAVE_TIMEOUT_SECONDS - 1)
        await asyncio.wait_for(asyncio.shield(save), SAVE_TIMEOUT_SECONDS)
    except ConversationGone:
        pass  # deleted meanwhile: nothing to store (turn_finish logged it)
    except asyncio.CancelledError:
        # Cancelled again (a shutdown repeats its cancellation): the shielded save goes on, and
        # logs its own giving up.
        logger.info("chat.turn.save_continues", message_id=plan.turn.assistant_message_id)
    except BaseException:
        logger.exception(
            "chat.turn.save_failed",
            conversation_id=str(plan.turn.conversation_id),
            message_id=plan.turn.assistant_message_id,
        )


async def _heartbeat(plan: TurnPlan, progress: "TurnProgress") -> None:
    """Checkpoint the reply so far every CHAT_CHECKPOINT_SECONDS, off the token path."""
    checkpoint = released(turn_checkpoint)
    while True:
        await asyncio.sleep(settings.CHAT_CHECKPOINT_SECONDS)
        try:
            if not await checkpoint(turn=plan.turn, content="".join(progress.reply)):
                progress.stop_with = TurnSuperseded()  # the stream stops at its next item or keep-alive
                return
        except ConversationGone as gone:
            progress.stop_with = gone
            return
        except Exception as exc:  # a missed checkpoint costs nothing but durability
            logger.warning("chat.turn.checkpoint_failed", error=type(exc).__name__)


def llm_json_call(provider: Provider, model: str) -> LLMJsonCall:
    """What the LLM-based sentiment strategies call: one JSON answer from the chat's own
    provider and model (the `sentiment` app never imports `llm`)."""

    async def call(system_prompt: str, user_text: str, schema: dict[str, Any]) -> dict[str, Any]:
        options = ChatOptions(model=model, temperature=0.0, max_tokens=256, system_prompt=system_prompt)
        return await provider.complete_json(
            [ChatMessage(role="user", content=user_text)], options, schema, name="sentiment"
        )

    return call


class TurnSentiment:
    """The user message's sentiment for one turn, by the requested method: from the reply's own
    JSON document (`structured`), or computed alongside the reply, started once its first chunk
    is out (`start`), so it adds nothing to the time to first token, not even its CPU. LLM
    methods fall back to the local analyzer when the offline provider answers."""

    def __init__(self, plan: TurnPlan, resolved: ResolvedProvider) -> None:
        self.method = plan.sentiment_method
        self.text = plan.text
        self.details = None if resolved.offline else {"provider": resolved.served_by, "model": plan.model}
        self.decoder: StructuredReplyDecoder | None = None
        self.task: asyncio.Task[Sentiment] | None = None
        self.llm_json: LLMJsonCall | None = None
        if self.method == STRUCTURED_METHOD and not resolved.offline:
            self.decoder = StructuredReplyDecoder()
        elif not resolved.offline:
            self.llm_json = llm_json_call(resolved.provider, plan.model)

    def start(self) -> None:
        if self.decoder is None and self.task is None:
            self.task = asyncio.create_task(
                analyze_message(
                    method=self.method, text=self.text, llm_json=self.llm_json, timeout=settings.SENTIMENT_TIMEOUT
                )
            )

    def chat_options(self, options: ChatOptions) -> ChatOptions:
        if self.decoder is None:
            return options
        prompt = (
            f"{options.system_prompt}\n\n{STRUCTURED_INSTRUCTIONS}"
            if options.system_prompt
            else STRUCTURED_INSTRUCTIONS
        )
        return replace(options, json_schema=STRUCTURED_SCHEMA, system_prompt=prompt)

    def visible(self, text: str) -> str:
        """The part of a text delta the user may see (never the structured JSON wrapper)."""
        return self.decoder.feed(text) if self.decoder else text

    def held_back(self) -> str:
        """At the end of the reply: text the structured decoder held back while it could still
        open a fenced JSON document, and which is reply text after all."""
        return self.decoder.flush() if self.decoder else ""

    async def result(self) -> Sentiment:
        self.start()  # a reply without text
        sentiment = self.decoder.finish() if self.decoder is not None else await self.task  # type: ignore[misc]
        if self.details and sentiment.source in (LLM_SEPARATE_METHOD, STRUCTURED_METHOD):
            sentiment = replace(sentiment, details={**(sentiment.details or {}), **self.details})
        return sentiment

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


def sentiment_fold(message: Sentiment) -> SentimentFold:
    """Fold the message sentiment into the conversation's running state (called under its row lock)."""

    def fold(state: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        new_state, cumulative = fold_cumulative(CumulativeState.from_dict(state), message)
        return new_state.to_dict(), {"message": message.to_stored(), "cumulative": cumulative.to_stored()}

    return fold


def sentiment_event(sentiment_data: dict[str, Any] | None) -> dict[str, Any]:
    data = sentiment_data or {}
    return {
        key: Sentiment.from_stored(data[key]).to_event() if data.get(key) else None for key in ("message", "cumulative")
    }


class ChatTurnResponse(StreamingHttpResponse):
    """The chat turn's SSE response (`chat_turn_events`). Its turn is written ahead, so a
    response dropped before its stream began (the client left while the view ran; lia.handler
    tells such a response) still ends the turn: `abandon` stores the reply, empty, as
    interrupted, as the stream would have at its first yield (CONTRACT §7.15). Left `streaming`
    until the sweep, it counted against the user's stream cap, and the client's resend waited
    CHAT_TURN_WAIT_SECONDS for it."""

    def __init__(self, plan: TurnPlan) -> None:
        self.events = chat_turn_events(plan)
        super().__init__(self.events, content_type="text/event-stream; charset=utf-8")
        self.plan = plan
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"
        self["Connection"] = "keep-alive"
        # A client that takes nothing for this long is gone, though still connected (lia.handler).
        self.send_timeout = settings.CHAT_SEND_TIMEOUT_SECONDS

    async def aclose_stream(self) -> None:
        """Close the stream now: the client is gone while a send was under way (lia.handler).
        Django closes only its own wrappers of the stream (RELIABILITY pitfall 3), which left
        the stream, parked at its yield, to the garbage collector: the provider went on
        generating and the reply stayed `streaming` until a collection. Closed here, it closes
        the provider's stream and stores the reply so far as interrupted, as at a disconnect."""
        await self.events.aclose()

    def abandon(self) -> None:
        """Django dropped this response unsent (lia.handler): end the turn if its stream never
        began."""
        if not self.plan.begun:
            self.plan.begun = True
            _store_unstreamed(self.plan)

    def close(self) -> None:  # also after a send cancelled before the stream's first step
        try:
            self.abandon()
        finally:
            super().close()


def _store_unstreamed(plan: TurnPlan) -> None:
    """The reply of a turn whose stream never began: interrupted, empty. A failure is logged,
    never raised (this runs as the request is torn down); the sweep marks the reply interrupted
    once its heartbeat is stale."""
    logger.info(
        "chat.turn.client_disconnected",
        reply_chars=0,
        before_stream=True,
        conversation_id=str(plan.turn.conversation_id),
    )
    try:
        turn_finish(turn=plan.turn, result=TurnProgress().result(plan, TurnStatus.INTERRUPTED))
    except ConversationGone:
        pass
    except Exception:
        logger.exception("chat.turn.save_failed", message_id=plan.turn.assistant_message_id)


async def chat_turn_events(plan: TurnPlan) -> AsyncIterator[bytes]:
    plan.begun = True
    event_ids = iter(range(1, 1_000_000_000))
    progress = TurnProgress()
    stored = False
    sentiment: TurnSentiment | None = None
    heartbeat: asyncio.Task[None] | None = None
    structlog.contextvars.bind_contextvars(conversation_id=str(plan.turn.conversation_id))

    def frame(name: str, data: dict[str, Any]) -> bytes:
        return sse_event(next(event_ids), name, data)

    def chunk(text: str) -> bytes:
        if progress.first_token_ms is None:
            progress.first_token_ms = round((time.monotonic() - progress.started) * 1000, 1)
        progress.reply.append(text)
        return frame("chunk", {"content": text})

    try:
        yield frame(
            "start", {"conversation_id": str(plan.turn.conversation_id), "message_id": plan.turn.user_message_id}
        )
        ending: tuple[TurnStatus, str] | None = None  # a reply that stops early: how it is stored, and why
        try:
            resolved = resolve_provider(plan.provider, plan.model)
            progress.served_by = resolved.served_by
            sentiment = TurnSentiment(plan, resolved)
            heartbeat = asyncio.create_task(_heartbeat(plan, progress))
            if plan.turn.earlier_turn_in_flight:
                await _wait_for_earlier_turns(plan)
            deadline = progress.started + settings.CHAT_STREAM_MAX_SECONDS
            deltas = resolved.provider.stream(_chat_messages(plan), sentiment.chat_options(plan.options))
            reply_text, thought_text = SurrogateMender(), SurrogateMender()
            keepalive = settings.CHAT_KEEPALIVE_SECONDS
            # aclosing: a stream closed at one of its `yield`s (the event loop's generator
            # finaliser closes it so once Django, whose handler closes only its own wrapper,
            # drops it mid-send) closes the provider's stream right then, before the partial
            # reply is saved, not from a second finaliser task after the save.
            async with contextlib.aclosing(_with_keepalive(deltas, interval=keepalive, deadline=deadline)) as items:
                async for item in items:
                    if progress.stop_with is not None:
                        raise progress.stop_with
                    if isinstance(item, bytes):
                        yield item
                    elif isinstance(item, TextDelta):
                        text = reply_text.mend(sentiment.visible(item.text))
                        if text:
                            yield chunk(text)
                            sentiment.start()
                    elif isinstance(item, ThoughtDelta):
                        if thought := thought_text.mend(item.text):
                            progress.thoughts.append(thought)
                            yield frame("thought", {"content": thought})
                    elif isinstance(item, Finish):
                        progress.finish = item
            # What was held back to the end: text the structured decoder could not yet tell from a
            # fence opening its document, then a high surrogate whose partner never came.
            if rest := reply_text.mend(sentiment.held_back()) + reply_text.rest():
                yield chunk(rest)
            if thought := thought_text.rest():
                progress.thoughts.append(thought)
                yield frame("thought", {"content": thought})
        except LLMError as exc:
            logger.warning("chat.turn.provider_failed", error=type(exc).__name__, provider=plan.provider)
            ending = (TurnStatus.FAILED, exc.public_message)
        except StreamTooLong:
            logger.warning("chat.turn.too_long", seconds=settings.CHAT_STREAM_MAX_SECONDS)
            ending = (TurnStatus.INTERRUPTED, TOO_LONG_ERROR)
        except TurnSuperseded:
            logger.warning("chat.turn.superseded", reply_chars=sum(map(len, progress.reply)))
            ending = (TurnStatus.INTERRUPTED, SUPERSEDED_ERROR)
        if ending is not None:
            status, message = ending
            stored = True
            save = _final_save(plan, progress.result(plan, status))
            async for beat in _keepalive_until(save):
                yield beat
            save.result()
            yield frame("error", {"message": message})
            return

        analysis = asyncio.ensure_future(sentiment.result())
        try:
            async for beat in _keepalive_until(analysis):
                yield beat
        finally:
            analysis.cancel()  # done already, unless the client left
        message_sentiment = analysis.result()
        stored = True
        save = _final_save(plan, progress.result(plan, TurnStatus.COMPLETE), sentiment_fold(message_sentiment))
        async for beat in _keepalive_until(save):
            yield beat
        sentiment_data = save.result()
        yield frame("sentiment", sentiment_event(sentiment_data))
        yield frame("done", {"finish_reason": "stop"})
    except ConversationGone:
        # Deleted while its reply streamed (found by an audit: the stream went on to `done`
        # with nothing stored). There is nothing to store, nor anywhere to store it.
        stored = True
        yield frame("error", {"message": GONE_ERROR})
    except Exception:
        # Never raise after the first byte: daphne would leave the client hanging.
        logger.exception("chat.turn.failed")
        if not stored:
            stored = True
            save = _final_save(plan, progress.result(plan, TurnStatus.FAILED))
            async for beat in _keepalive_until(save):
                yield beat
            if not save.cancelled() and save.exception() is not None:
                logger.error(
                    "chat.turn.save_failed", message_id=plan.turn.assistant_message_id, exc_info=save.exception()
                )
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        yield frame("error", {"message": GENERIC_ERROR, **({"request_id": request_id} if request_id else {})})
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        if sentiment is not None:
            sentiment.cancel()
        if not stored:
            # The client went away (CancelledError at an await, or GeneratorExit at a yield).
            logger.info("chat.turn.client_disconnected", reply_chars=sum(map(len, progress.reply)))
            await _save_after_disconnect(plan, progress.result(plan, TurnStatus.INTERRUPTED))
