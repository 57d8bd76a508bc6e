"""Writes. A chat turn is written twice: before the stream (conversation, user message and an
assistant placeholder, committed before the first byte) and after it (the reply, its status and
the sentiment, in one transaction under the conversation's row lock, so concurrent turns never
half-write the running state)."""

import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import ProgrammingError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.exceptions import TokenRejected
from accounts.models import User
from accounts.tokens import TokenClaims, claims_user, fingerprint_pads
from conversations.exceptions import ConversationGone, ConversationNotFound, TooManyStreams
from conversations.models import Conversation, Message, TurnStatus
from conversations.selectors import (
    context_fit,
    conversation_context,
    conversation_get_for_user,
    conversation_has_later_turn,
    conversation_has_turn_in_flight,
    conversation_not_found,
    conversation_recent_messages,
    parse_conversation_id,
    user_streams_elsewhere,
)

logger = structlog.get_logger("lia.chat")

TITLE_LENGTH = 50
UNDEFINED_FUNCTION = "42883"  # PostgreSQL's SQLSTATE for a function that doesn't exist

# Given the conversation's sentiment state, returns (new state, the user message's sentiment_data).
SentimentFold = Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, dict[str, Any] | None]]


def turn_counts_in_sentiment(reply_status: str | None) -> bool:
    """Whether a turn's user message is scored and folded into the conversation's running
    sentiment: only when its reply completed (CONTRACT §9.7: the count "increases by one per
    completed turn"). A turn that failed or was interrupted leaves its user message's
    sentiment_data null. `turn_finish` folds by this rule, and the re-score
    (conversations.rescoring) rebuilds by it."""
    return reply_status == TurnStatus.COMPLETE


def conversation_title_from(text: str) -> str:
    """CONTRACT §9.1: the first 50 characters, stripped; longer messages are cut at the last
    space and get '...'."""
    title = text[:TITLE_LENGTH].strip()
    if len(text) > TITLE_LENGTH:
        if " " in title:
            title = title[: title.rindex(" ")]
        title += "..."
    return title


@dataclass(frozen=True)
class TurnStart:
    conversation_id: uuid.UUID
    user_message_id: int
    assistant_message_id: int
    history: list[tuple[str, str]]  # (role, content) of earlier turns, oldest first
    earlier_turn_in_flight: bool  # an earlier reply in this conversation is still streaming


def heartbeat_cutoff(now: datetime | None = None) -> datetime:
    """Replies whose last checkpoint is older than this are no longer streaming anywhere."""
    return (now or timezone.now()) - timedelta(seconds=2 * sweep_interval())


def turn_start(*, claims: TokenClaims, conversation_id: str | None, text: str, provider: str, model: str) -> TurnStart:
    """Check that the token's session is still its user's, resolve or create the conversation,
    store the user message and the assistant's placeholder, commit. Raises TokenRejected for a
    session that has ended (accounts.tokens.claims_user's checks), ConversationNotFound for an
    unknown or foreign id, and TooManyStreams when the user already has
    CHAT_MAX_CONCURRENT_STREAMS replies streaming in other conversations (a new turn in a
    conversation with one in flight is never refused: the web client aborts and resends at once,
    and turns of one conversation are serialised).

    Every reply waits for this, so on PostgreSQL it is one statement: the function
    `conversations_turn_start` (migrations 0005 to 0007), which does what `claims_user` and
    `_write_ahead` do with the ORM, in one round trip instead of seven (a first turn) to eleven
    (a later one, its history included)."""
    existing_id = None
    if conversation_id:
        existing_id = parse_conversation_id(conversation_id)
        if existing_id is None:
            claims_user(claims)  # a token its user no longer accepts is a 401 before the 404
            raise ConversationNotFound()
    write = _write_ahead_in_one_statement if connection.vendor == "postgresql" else _write_ahead
    written = write(
        TurnWrite(
            claims=claims,
            existing_id=existing_id,
            text=text,
            provider=provider,
            model=model,
            now=timezone.now(),
            stream_cap=settings.CHAT_MAX_CONCURRENT_STREAMS,
            context_max_messages=settings.CHAT_CONTEXT_MAX_MESSAGES,
        )
    )
    logger.info("chat.turn.started", conversation_id=str(written.conversation_id), message_id=written.user_message_id)
    return TurnStart(
        conversation_id=written.conversation_id,
        user_message_id=written.user_message_id,
        assistant_message_id=written.assistant_message_id,
        history=context_fit(written.recent_messages, max_chars=settings.CHAT_CONTEXT_MAX_CHARS),
        earlier_turn_in_flight=written.earlier_turn_in_flight,
    )


@dataclass(frozen=True)
class TurnWrite:
    """What the write-ahead writes: a turn of the claims' user in `existing_id` (None: a new
    conversation), once their session is checked."""

    claims: TokenClaims
    existing_id: uuid.UUID | None
    text: str
    provider: str
    model: str
    now: datetime
    stream_cap: int  # CHAT_MAX_CONCURRENT_STREAMS; <= 0: no cap
    context_max_messages: int  # CHAT_CONTEXT_MAX_MESSAGES: how many earlier messages to read


@dataclass(frozen=True)
class WriteAhead:
    conversation_id: uuid.UUID
    user_message_id: int
    assistant_message_id: int
    earlier_turn_in_flight: bool
    # The conversation's latest messages before this turn, newest first, as (role, content): none
    # for a new conversation, nor while an earlier reply is in flight (the stream reads them once
    # it is stored).
    recent_messages: list[tuple[str, str]]


def _placeholder_model_info(provider: str, model: str) -> dict[str, Any]:
    return {"provider": provider, "model": model, "thoughts": None}


def _write_ahead(turn: TurnWrite) -> WriteAhead:
    """The session check, then the write-ahead with the ORM in one transaction (SQLite, and the
    reference for the PostgreSQL function)."""
    user = claims_user(turn.claims)
    now = turn.now
    with transaction.atomic():
        if turn.stream_cap > 0:
            # One turn start per user at a time, so two can't both squeeze under the cap.
            User.objects.select_for_update().filter(pk=user.pk).first()
            streaming = user_streams_elsewhere(
                user=user, conversation_id=turn.existing_id, alive_since=heartbeat_cutoff(now)
            )
            if streaming >= turn.stream_cap:
                raise TooManyStreams(turn.stream_cap)
        fields = {"updated_at": now, "status": TurnStatus.STREAMING, "provider": turn.provider, "model": turn.model}
        if turn.existing_id is None:
            conversation = Conversation.objects.create(
                user=user, title=conversation_title_from(turn.text), created_at=now, **fields
            )
        else:
            conversation = Conversation.objects.select_for_update().filter(pk=turn.existing_id, user=user).first()
            if conversation is None:  # unknown, someone else's, or deleted a moment ago
                raise conversation_not_found(turn.existing_id)
            # Locked: this turn's messages come after the conversation's, also when a turn
            # that locked it first took a later `now` (turns sent together).
            latest = conversation.messages.aggregate(latest=Max("created_at"))["latest"]
            now = fields["updated_at"] = max(now, latest) if latest is not None else now
            if conversation.title is None and latest is None:
                conversation.title = conversation_title_from(turn.text)
            for name, value in fields.items():
                setattr(conversation, name, value)
            conversation.save(update_fields=["title", *fields])
        user_message, assistant_message = Message.objects.bulk_create(
            [
                Message(
                    conversation=conversation,
                    role=Message.Role.USER,
                    content=turn.text,
                    created_at=now,
                    updated_at=now,
                ),
                Message(
                    conversation=conversation,
                    role=Message.Role.ASSISTANT,
                    status=TurnStatus.STREAMING,
                    model_info=_placeholder_model_info(turn.provider, turn.model),
                    created_at=now,
                    updated_at=now,
                ),
            ]
        )
    # After the commit, and before the history is read: a reply that is no longer in flight is
    # stored, so the history read next has it. (Read first, the history could miss a reply
    # stored a moment before the check.)
    in_flight = turn.existing_id is not None and conversation_has_turn_in_flight(
        conversation_id=conversation.pk, before_id=user_message.pk, alive_since=heartbeat_cutoff(turn.now)
    )
    recent = (
        []
        if turn.existing_id is None or in_flight
        else conversation_recent_messages(
            conversation_id=conversation.pk, before_id=user_message.pk, limit=turn.context_max_messages
        )
    )
    return WriteAhead(conversation.pk, user_message.pk, assistant_message.pk, in_flight, recent)


def _write_ahead_in_one_statement(turn: TurnWrite) -> WriteAhead:
    """The write-ahead as one call of `conversations_turn_start` (PostgreSQL): atomic on its own,
    and its in-flight check is made before the history is read, as `_write_ahead`'s is. Inside
    an outer transaction (tests, a caller's atomic block) it runs in a savepoint, so a failure
    leaves that transaction usable. Where migration 0006 hasn't run yet (new code deployed
    before `migrate`), the ORM writes the turn, and every such turn logs an error."""
    conversation_id = turn.existing_id or uuid.uuid4()
    claims = turn.claims
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT * FROM conversations_turn_start("
                "%s::bigint, %s::uuid, %s::boolean, %s::varchar, %s::text, %s::varchar, %s::varchar, %s::jsonb,"
                " %s::timestamptz, %s::timestamptz, %s::integer,"
                " %s::varchar, %s::double precision, %s::varchar, %s::bytea, %s::bytea, %s::integer)",
                [
                    claims.user_id,
                    conversation_id,
                    turn.existing_id is None,
                    conversation_title_from(turn.text),
                    turn.text,
                    turn.provider,
                    turn.model,
                    json.dumps(_placeholder_model_info(turn.provider, turn.model)),
                    turn.now,
                    heartbeat_cutoff(turn.now),
                    turn.stream_cap,
                    claims.jti,
                    claims.issued_at,
                    claims.fingerprint,
                    *fingerprint_pads(),
                    turn.context_max_messages,
                ],
            )
            outcome, user_message_id, assistant_message_id, in_flight, recent = cursor.fetchone()
    except ProgrammingError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != UNDEFINED_FUNCTION:
            raise
        logger.error("chat.turn.write_ahead_function_missing", hint="run `manage.py migrate`")
        return _write_ahead(turn)
    if outcome == "user_not_found":
        raise TokenRejected("User not found")
    if outcome == "token_rejected":
        raise TokenRejected()
    if outcome == "too_many_streams":
        raise TooManyStreams(turn.stream_cap)
    if outcome == "not_found":
        raise conversation_not_found(conversation_id)
    recent = json.loads(recent) if isinstance(recent, str) else recent  # Django reads jsonb as text
    return WriteAhead(
        conversation_id, user_message_id, assistant_message_id, in_flight, [tuple(m) for m in recent or []]
    )


def turn_history(*, conversation_id: uuid.UUID, user_message_id: int) -> list[tuple[str, str]]:
    return conversation_context(
        conversation_id=conversation_id,
        before_id=user_message_id,
        max_messages=settings.CHAT_CONTEXT_MAX_MESSAGES,
        max_chars=settings.CHAT_CONTEXT_MAX_CHARS,
    )


@dataclass(frozen=True)
class TurnResult:
    content: str
    status: TurnStatus
    model_info: dict[str, Any]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def turn_finish(
    *, turn: TurnStart, result: TurnResult, sentiment_fold: SentimentFold | None = None
) -> dict[str, Any] | None:
    """Store the reply and fold the sentiment in, atomically. Returns the user message's
    sentiment_data (None when there was none). Raises ConversationGone when the conversation was
    deleted meanwhile."""
    now = timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=turn.conversation_id).first()
        if conversation is None:
            logger.info("chat.turn.conversation_gone", conversation_id=str(turn.conversation_id))
            raise ConversationGone()
        sentiment_data = None
        if sentiment_fold is not None and turn_counts_in_sentiment(result.status):
            conversation.sentiment_state, sentiment_data = sentiment_fold(conversation.sentiment_state)
            Message.objects.filter(pk=turn.user_message_id).update(sentiment_data=sentiment_data)
        Message.objects.filter(pk=turn.assistant_message_id).update(
            content=result.content,
            status=result.status,
            model_info=result.model_info,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            updated_at=now,
        )
        conversation.updated_at = now
        # The conversation's status is its latest turn's: a reply stored after a later turn
        # started (aborted, or superseded) must not overwrite it.
        if not conversation_has_later_turn(conversation_id=turn.conversation_id, after_id=turn.assistant_message_id):
            conversation.status = result.status
        conversation.save(update_fields=["sentiment_state", "updated_at", "status"])
    logger.info(
        "chat.turn.finished",
        conversation_id=str(turn.conversation_id),
        message_id=turn.assistant_message_id,
        status=result.status,
        reply_chars=len(result.content),
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )
    return sentiment_data


def turn_checkpoint(*, turn: TurnStart, content: str) -> bool:
    """Store the reply so far while it streams: a crash loses at most one interval of text, and
    the write is the heartbeat that tells other requests the reply is still alive. Returns
    False once a later turn of the conversation has superseded the reply (`turn_supersede_earlier`):
    its stream should stop. (A reply the sweep marked during a database outage, with no later
    turn, streams on and is stored whole.) Raises ConversationGone once the conversation has been
    deleted: its stream should stop too."""
    if Message.objects.filter(pk=turn.assistant_message_id, status=TurnStatus.STREAMING).update(
        content=content, updated_at=timezone.now()
    ):
        return True
    if not Message.objects.filter(pk=turn.assistant_message_id).exists():
        logger.info("chat.turn.conversation_gone", conversation_id=str(turn.conversation_id))
        raise ConversationGone()
    return not conversation_has_later_turn(conversation_id=turn.conversation_id, after_id=turn.assistant_message_id)


def turn_supersede_earlier(*, turn: TurnStart) -> bool:
    """Supersede the conversation's earlier replies still streaming when this turn has waited
    CHAT_TURN_WAIT_SECONDS for them (CONTRACT §7.15: a resend is never refused; Lia serialises
    or supersedes the earlier turn): they are marked interrupted, and each one's stream stops
    once its next checkpoint finds out, and stores what it has. So a client that never aborts
    can't hold more streams than the per-user cap by sending into one conversation. Returns
    whether this turn's own reply is still streaming (a later turn may have superseded it too)."""
    with transaction.atomic():
        superseded = Message.objects.filter(
            conversation_id=turn.conversation_id, pk__lt=turn.user_message_id, status=TurnStatus.STREAMING
        ).update(status=TurnStatus.INTERRUPTED, updated_at=timezone.now())
        alive = Message.objects.filter(pk=turn.assistant_message_id, status=TurnStatus.STREAMING).exists()
    if superseded:
        logger.warning("chat.turn.superseded_earlier", conversation_id=str(turn.conversation_id), replies=superseded)
    return alive


def sweep_interval() -> float:
    """How often a server process sweeps: half the time a heartbeat may be missing."""
    return (3 * settings.CHAT_CHECKPOINT_SECONDS + 10) / 2


def streaming_messages_sweep() -> int:
    """Mark replies left `streaming` by a process that died (kill -9, OOM, a lost host) as
    interrupted: their heartbeat stopped. Safe to run at any time, from any process."""
    stale = Message.objects.filter(status=TurnStatus.STREAMING, updated_at__lt=heartbeat_cutoff())
    conversation_ids = set(stale.values_list("conversation_id", flat=True))
    count = stale.update(status=TurnStatus.INTERRUPTED)
    Conversation.objects.filter(pk__in=conversation_ids, status=TurnStatus.STREAMING).update(
        status=TurnStatus.INTERRUPTED
    )
    if count:
        logger.info("chat.sweep.interrupted", count=count)
    return count


def conversation_rename(*, user: User, conversation_id: object, title: str) -> None:
    """One UPDATE of the user's conversation: one deleted meanwhile (another tab) is not found,
    where a read then save() raised "did not affect any rows", answered as a 503."""
    parsed = parse_conversation_id(conversation_id)
    if parsed is None:
        raise ConversationNotFound()
    if not Conversation.objects.filter(pk=parsed, user=user).update(title=title, updated_at=timezone.now()):
        raise conversation_not_found(parsed)


def conversation_delete(*, user: User, conversation_id: object) -> None:
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    conversation.delete()
    logger.info("chat.conversation.deleted", conversation_id=str(conversation_id))


def conversation_delete_all(*, user: User) -> int:
    _, per_model = Conversation.objects.filter(user=user).delete()
    count = per_model.get(Conversation._meta.label, 0)
    logger.info("chat.conversation.deleted_all", count=count)
    return count
