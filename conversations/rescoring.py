"""Recompute stored sentiment: each user message by a method, then the conversation's running
state folded again in order (the one place it is rebuilt from history)."""

from dataclasses import dataclass

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from conversations.models import Conversation, Message
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
        resolved = resolve_provider(conversation.provider, conversation.model or settings.DEFAULT_LLM_MODEL)
    except LLMError:
        return None
    return None if resolved.offline else llm_json_call(resolved.provider, resolved.model)


def _store(conversation_id: object, scored: list[tuple[int, Sentiment]]) -> bool:
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            return False
        current = list(conversation.messages.filter(role=Message.Role.USER).order_by("created_at", "id"))
        if [m.pk for m in current] != [pk for pk, _ in scored]:
            return False
        state = CumulativeState()
        for message, (_, sentiment) in zip(current, scored, strict=True):
            state, cumulative = fold_cumulative(state, sentiment)
            message.sentiment_data = {"message": sentiment.to_stored(), "cumulative": cumulative.to_stored()}
        Message.objects.bulk_update(current, ["sentiment_data"])
        conversation.sentiment_state = state.to_dict() if current else None
        conversation.save(update_fields=["sentiment_state"])
    return True


async def conversation_rescore_sentiment(*, conversation: Conversation, method: str | None = None) -> RescoreOutcome:
    messages = await sync_to_async(list)(
        conversation.messages.filter(role=Message.Role.USER).order_by("created_at", "id")
    )
    llm_json = await sync_to_async(_llm_json_for)(conversation)
    outcome = RescoreOutcome()
    scored: list[tuple[int, Sentiment]] = []
    for message in messages:
        sentiment = await analyze_message(method=_method_for(message, method), text=message.content, llm_json=llm_json)
        outcome.fallbacks += sentiment.source == "default"
        scored.append((message.pk, sentiment))
    if await sync_to_async(_store)(conversation.pk, scored):
        outcome.messages = len(scored)
    else:
        outcome.skipped = True
        logger.info("chat.rescore.skipped", conversation_id=str(conversation.pk))
    return outcome
