"""Reads. `conversation_get_for_user` is the one access check: another user's conversation is
"not found", exactly like one that doesn't exist."""

import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.db.models import Expression, F, Func, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Length

from accounts.models import User
from conversations.exceptions import ConversationNotFound
from conversations.models import Conversation, Message, TurnStatus

logger = structlog.get_logger("lia.chat")


def parse_conversation_id(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def conversation_get_for_user(*, user: User, conversation_id: object) -> Conversation:
    parsed = parse_conversation_id(conversation_id)
    if parsed is None:
        raise ConversationNotFound()
    conversation = Conversation.objects.filter(pk=parsed, user=user).first()
    if conversation is None:
        raise conversation_not_found(parsed)
    return conversation


def conversation_not_found(conversation_id: uuid.UUID) -> ConversationNotFound:
    """The 404 for a conversation the user can't have, logged as probing (it exists, someone
    else's) or a stale id (it doesn't). The caller sees the same answer either way."""
    if Conversation.objects.filter(pk=conversation_id).exists():
        logger.warning("security.conversation_denied", conversation_id=str(conversation_id))
    else:
        logger.info("chat.conversation_not_found", conversation_id=str(conversation_id))
    return ConversationNotFound()


def conversation_list(*, user: User, offset: int, limit: int) -> QuerySet[Conversation]:
    """The user's conversations, most recently active first, with their message counts.

    Each count is a correlated subquery, so only the page's conversations are counted (read in
    order from conv_user_recent_idx); a JOIN with GROUP BY counted the messages of every one of
    the user's conversations before it could sort and cut the page."""
    return (
        Conversation.objects.filter(user=user)
        .annotate(message_count=message_count_subquery())
        .order_by("-updated_at", "-created_at")[offset : offset + limit]
    )


def message_count_subquery() -> Subquery:
    """Each conversation's message count, as a correlated subquery on the messages' index: only
    the conversations a query returns are counted (0 for one without messages: no GROUP BY)."""
    counted = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .order_by()
        .annotate(count=Func(F("pk"), function="COUNT", output_field=IntegerField()))
        .values("count")
    )
    return Subquery(counted)


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]
    total: int


def conversation_messages_page(*, conversation: Conversation, offset: int, limit: int) -> MessagePage:
    """Chronological page (created_at, then id), as the FastAPI backend paged (CONTRACT §6.2)."""
    messages = conversation.messages.order_by("created_at", "id")
    return MessagePage(messages=list(messages[offset : offset + limit]), total=messages.count())


def conversation_user_turns(*, conversation_id: uuid.UUID) -> list[tuple[Message, str | None]]:
    """The conversation's user messages, oldest first, each with its reply's status: that of the
    message after it when that is the assistant's (turn_start writes the two together), else None."""
    following = (
        Message.objects.filter(conversation_id=OuterRef("conversation_id"))
        .filter(Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id")))
        .order_by("created_at", "id")
    )
    users = (
        Message.objects.filter(conversation_id=conversation_id, role=Message.Role.USER)
        .annotate(
            next_role=Subquery(following.values("role")[:1]), next_status=Subquery(following.values("status")[:1])
        )
        .order_by("created_at", "id")
    )
    return [
        (message, message.next_status if message.next_role == Message.Role.ASSISTANT else None) for message in users
    ]


# The model always sees at least this many of the latest messages (CONTRACT §9.9), each cut to
# what fits, and at least MIN_CHARS of each.
CONTEXT_MIN_MESSAGES = 10
CONTEXT_MIN_CHARS = 500


def conversation_context(
    *, conversation_id: uuid.UUID, before_id: int, max_messages: int, max_chars: int
) -> list[tuple[str, str]]:
    """The turns the model sees before message `before_id`, oldest first, as (role, content):
    the newest `max_messages` (`conversation_recent_messages`) within about `max_chars`
    (`context_fit`)."""
    recent = conversation_recent_messages(conversation_id=conversation_id, before_id=before_id, limit=max_messages)
    return context_fit(recent, max_chars=max_chars)


def conversation_recent_messages(*, conversation_id: uuid.UUID, before_id: int, limit: int) -> list[tuple[str, str]]:
    """The newest `limit` messages before message `before_id`, newest first, as (role, content).
    Empty replies (a turn aborted before its first token) carry nothing and are skipped. (On
    PostgreSQL a later chat turn's write-ahead reads the same in its own statement.)"""
    return list(
        Message.objects.filter(conversation_id=conversation_id, id__lt=before_id)
        .exclude(content="")
        .order_by("-created_at", "-id")
        .values_list("role", "content")[:limit]
    )


def context_fit(recent: list[tuple[str, str]], *, max_chars: int) -> list[tuple[str, str]]:
    """Of `recent` (newest first), the newest that fit in about `max_chars`, oldest first. A
    message too long for what is left of the budget is cut (its opening kept) rather than dropped
    while fewer than CONTEXT_MIN_MESSAGES are in."""
    kept: list[tuple[str, str]] = []
    budget = max_chars
    for role, content in recent:
        if len(content) > budget:
            if len(kept) >= CONTEXT_MIN_MESSAGES:
                break
            content = content[: max(budget, CONTEXT_MIN_CHARS)]
        budget -= len(content)
        kept.append((role, content))
    kept.reverse()
    return kept


def streaming_messages(*, alive_since: datetime) -> QuerySet[Message]:
    """Replies still streaming, with a heartbeat since `alive_since` (older ones belong to a
    process that died: the sweep marks them interrupted)."""
    return Message.objects.filter(status=TurnStatus.STREAMING, updated_at__gte=alive_since)


def conversation_has_turn_in_flight(*, conversation_id: uuid.UUID, before_id: int, alive_since: datetime) -> bool:
    return (
        streaming_messages(alive_since=alive_since).filter(conversation_id=conversation_id, id__lt=before_id).exists()
    )


def conversation_has_later_turn(*, conversation_id: uuid.UUID, after_id: int) -> bool:
    """Whether a turn began in the conversation after message `after_id` (a reply)."""
    return Message.objects.filter(conversation_id=conversation_id, id__gt=after_id).exists()


def user_streams_elsewhere(*, user: User, conversation_id: uuid.UUID | None, alive_since: datetime) -> int:
    """How many of the user's replies are streaming in other conversations."""
    streams = streaming_messages(alive_since=alive_since).filter(conversation__user=user)
    if conversation_id is not None:
        streams = streams.exclude(conversation_id=conversation_id)
    return streams.count()


CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text, where no provider counted


def _estimated_tokens(chars: Expression) -> Expression:
    """ceil(chars / CHARS_PER_TOKEN) in SQL (integer division on both SQLite and PostgreSQL)."""
    return (chars + Value(CHARS_PER_TOKEN - 1)) / Value(CHARS_PER_TOKEN)


def user_tokens_spent(*, user_id: int, since: datetime) -> int:
    """Tokens the user's turns started since `since` cost: for each reply, the prompt and
    completion tokens its provider reported, each estimated from characters where it reported
    none (the offline provider, usage-less servers, replies cut short): the prompt as the user
    message the reply answers (same conversation, same created_at: turn_start writes both at
    once; of turns written at the same time, the user message just before the reply), the
    completion as the reply so far.

    One aggregate query. It reads only the conversations active since then (conv_user_recent_idx;
    a conversation's updated_at is never older than its newest message) and their messages since
    then (msg_conv_created_idx); the user-message lookup runs only for replies without usage."""
    user_chars = (
        Message.objects.filter(
            conversation_id=OuterRef("conversation_id"),
            role=Message.Role.USER,
            created_at=OuterRef("created_at"),
            id__lt=OuterRef("id"),
        )
        .order_by("-id")
        .annotate(chars=Length("content"))
        .values("chars")[:1]
    )
    tokens = Coalesce(
        "prompt_tokens", _estimated_tokens(Coalesce(Subquery(user_chars), Value(0))), output_field=IntegerField()
    ) + Coalesce("completion_tokens", _estimated_tokens(Length("content")), output_field=IntegerField())
    total = Message.objects.filter(
        conversation__user_id=user_id,
        conversation__updated_at__gte=since,
        role=Message.Role.ASSISTANT,
        created_at__gte=since,
    ).aggregate(total=Sum(tokens))["total"]
    return total or 0
