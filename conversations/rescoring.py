"""Recompute stored sentiment: each user message by a method, then the conversation's running
state folded again in order (the one place it is rebuilt from history). As in the live chat,
only completed turns count (`turn_counts_in_sentiment`): the user message of a turn that failed
or was interrupted is neither scored nor folded, and keeps no sentiment_data."""

import uuid
from dataclasses import dataclass

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from conversations.models import Conversation, Message
from conversations.selectors import conversation_user_turns
from conversations.services import turn_counts_in_sentiment
from conversations.streaming import llm_json_call
from llm import LLMError, resolve_provider
from sentiment import METHODS, CumulativeState, LLMJsonCall, Sentiment, analyze_message, fold_cumulative

logger = structlog.get_logger("lia.chat")

FALLBACK_METHOD = "local"


@dataclass
class RescoreOutcome:
    messages: int = 0
    fallbacks: int = 0  # analyses that failed and got the neutral result
    skipped: bool = False  # the conversation changed meanwhile; run again to include it


def _method_for(message: Message, override: str | None) -> str:
    if override:
        return override
    source = ((message.sentiment_data or {}).get("message") or {}).get("source")
    return source if source in METHODS else FALLBACK_METHOD


def _llm_json_for(conversation: Conversation) -> LLMJsonCall | None:
    if not conversation.provider:
        return None
    try:
        # The model the conversation was served by, whether or not the catalogue still lists it
        # (a review found those re-scored by the local analyzer instead, silently).
        resolved = resolve_provider(
            conversation.provider, conversation.model or settings.DEFAULT_LLM_MODEL, offered_only=False
        )
    except LLMError:
        return None
    return None if resolved.offline else llm_json_call(resolved.provider, resolved.model)


def _counted(conversation_id: uuid.UUID) -> list[tuple[Message, bool]]:
    """The user messages, oldest first, each with whether its turn counts in the running sentiment."""
    return [
        (message, turn_counts_in_sentiment(reply_status))
        for message, reply_status in conversation_user_turns(conversation_id=conversation_id)
    ]


def _store(conversation_id: uuid.UUID, scored: list[tuple[int, Sentiment | None]]) -> bool:
    """Store the scores (None: a turn that does not count) and the state folded from them, unless
    the conversation's turns changed since they were read (a new turn, or one that ended)."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            return False
        current = _counted(conversation_id)
        if [(m.pk, counts) for m, counts in current] != [(pk, s is not None) for pk, s in scored]:
            return False
        state = CumulativeState()
        for (message, _), (_, sentiment) in zip(current, scored, strict=True):
            if sentiment is None:
                message.sentiment_data = None
                continue
            state, cumulative = fold_cumulative(state, sentiment)
            message.sentiment_data = {"message": sentiment.to_stored(), "cumulative": cumulative.to_stored()}
        Message.objects.bulk_update([message for message, _ in current], ["sentiment_data"])
        # Like the live chat's, the state is written by the first fold, and never without one.
        folded = any(sentiment is not None for _, sentiment in scored)
        conversation.sentiment_state = state.to_dict() if folded else None
        conversation.save(update_fields=["sentiment_state"])
    return True


async def conversation_rescore_sentiment(*, conversation: Conversation, method: str | None = None) -> RescoreOutcome:
    turns = await sync_to_async(_counted)(conversation.pk)
    llm_json = await sync_to_async(_llm_json_for)(conversation)
    outcome = RescoreOutcome()
    scored: list[tuple[int, Sentiment | None]] = []
    for message, counts in turns:
        sentiment: Sentiment | None = None
        if counts:
            sentiment = await analyze_message(
                method=_method_for(message, method), text=message.content, llm_json=llm_json
            )
            outcome.fallbacks += sentiment.source == "default"
        scored.append((message.pk, sentiment))
    if await sync_to_async(_store)(conversation.pk, scored):
        outcome.messages = sum(sentiment is not None for _, sentiment in scored)
    else:
        outcome.skipped = True
        logger.info("chat.rescore.skipped", conversation_id=str(conversation.pk))
    return outcome
