"""Writes. A chat turn is written twice: before the stream (conversation, user message and an
assistant placeholder, committed before the first byte) and after it (the reply, its status and
the sentiment, in one transaction under the conversation's row lock, so concurrent turns never
half-write the running state)."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from conversations.models import Conversation, Message, TurnStatus
from conversations.selectors import (
    conversation_context,
    conversation_get_for_user,
    conversation_has_turn_in_flight,
)

logger = structlog.get_logger("lia.chat")

TITLE_LENGTH = 50

# Given the conversation's sentiment state, returns (new state, the user message's sentiment_data).
SentimentFold = Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, dict[str, Any] | None]]


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


def turn_start(*, user: User, conversation_id: str | None, text: str, provider: str, model: str) -> TurnStart:
    """Resolve or create the conversation, store the user message and the assistant's
    placeholder, commit. Raises ConversationNotFound for an unknown or foreign id."""
    now = timezone.now()
    with transaction.atomic():
        if conversation_id:
            conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
            conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
            is_new = conversation.title is None and not conversation.messages.exists()
        else:
            conversation = Conversation.objects.create(user=user, created_at=now, updated_at=now)
            is_new = True
        if is_new:
            conversation.title = conversation_title_from(text)
        user_message = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, content=text, created_at=now
        )
        assistant_message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=TurnStatus.STREAMING,
            model_info={"provider": provider, "model": model, "thoughts": None},
            created_at=now,
        )
        conversation.updated_at = now
        conversation.status = TurnStatus.STREAMING
        conversation.provider = provider
        conversation.model = model
        conversation.save(update_fields=["title", "updated_at", "status", "provider", "model"])
    logger.info("chat.turn.started", conversation_id=str(conversation.pk), message_id=user_message.pk)
    return TurnStart(
        conversation_id=conversation.pk,
        user_message_id=user_message.pk,
        assistant_message_id=assistant_message.pk,
        history=turn_history(conversation_id=conversation.pk, user_message_id=user_message.pk),
        earlier_turn_in_flight=conversation_has_turn_in_flight(
            conversation_id=conversation.pk,
            before_id=user_message.pk,
            since=now - timedelta(seconds=settings.CHAT_STREAM_MAX_SECONDS),
        ),
    )


def turn_history(*, conversation_id: uuid.UUID, user_message_id: int) -> list[tuple[str, str]]:
    messages = conversation_context(
        conversation_id=conversation_id,
        before_id=user_message_id,
        max_messages=settings.CHAT_CONTEXT_MAX_MESSAGES,
        max_chars=settings.CHAT_CONTEXT_MAX_CHARS,
    )
    return [(m.role, m.content) for m in messages]


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
    sentiment_data (None when there was none, or the conversation was deleted meanwhile)."""
    now = timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=turn.conversation_id).first()
        if conversation is None:
            logger.info("chat.turn.conversation_gone", conversation_id=str(turn.conversation_id))
            return None
        sentiment_data = None
        if sentiment_fold is not None:
            conversation.sentiment_state, sentiment_data = sentiment_fold(conversation.sentiment_state)
            Message.objects.filter(pk=turn.user_message_id).update(sentiment_data=sentiment_data)
        Message.objects.filter(pk=turn.assistant_message_id).update(
            content=result.content,
            status=result.status,
            model_info=result.model_info,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )
        conversation.updated_at = now
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


def streaming_messages_sweep(*, older_than: timedelta) -> int:
    """Mark replies left `streaming` by a process that died (kill -9, OOM) as interrupted."""
    cutoff = timezone.now() - older_than
    stale = Message.objects.filter(status=TurnStatus.STREAMING, created_at__lt=cutoff)
    conversation_ids = set(stale.values_list("conversation_id", flat=True))
    count = stale.update(status=TurnStatus.INTERRUPTED)
    Conversation.objects.filter(pk__in=conversation_ids, status=TurnStatus.STREAMING).update(
        status=TurnStatus.INTERRUPTED
    )
    return count


def conversation_rename(*, user: User, conversation_id: object, title: str) -> None:
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    conversation.title = title
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["title", "updated_at"])


def conversation_delete(*, user: User, conversation_id: object) -> None:
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    conversation.delete()
    logger.info("chat.conversation.deleted", conversation_id=str(conversation_id))


def conversation_delete_all(*, user: User) -> int:
    _, per_model = Conversation.objects.filter(user=user).delete()
    count = per_model.get(Conversation._meta.label, 0)
    logger.info("chat.conversation.deleted_all", count=count)
    return count
