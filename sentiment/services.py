"""The one entry point for a message's sentiment: `analyze_message` never fails the chat."""

import asyncio
import time

import structlog
from django.conf import settings

from sentiment.analyzers import llm_separate, local, nlp_api
from sentiment.exceptions import SentimentError, failure_reason
from sentiment.normalize import neutral_fallback
from sentiment.types import LLMJsonCall, Sentiment

NLP_API_METHOD = "nlp_api"
LLM_SEPARATE_METHOD = "llm_separate"
STRUCTURED_METHOD = "structured"
LOCAL_METHOD = "local"
# CONTRACT §6.7: the three contract ids first, in this order; Lia's additions after them.
METHODS = [NLP_API_METHOD, LLM_SEPARATE_METHOD, STRUCTURED_METHOD, LOCAL_METHOD]
DEFAULT_METHOD = LLM_SEPARATE_METHOD

log = structlog.get_logger(__name__)


def preload_analyzers() -> list[str]:
    """Load what the analyzers would otherwise load in a user's first turn: the local
    analyzer's lexicon (every method's fallback; ~50 ms) and, when Cloud NL is configured, its
    client (the Google client libraries' import). A server process does it at start. Returns
    what it loaded."""
    local.preload()
    loaded = [LOCAL_METHOD]
    config = nlp_api.CloudNLConfig.from_settings()
    if config.configured:
        nlp_api.get_client(config)
        loaded.append(NLP_API_METHOD)
    return loaded


def method_configured(method: str) -> bool:
    """Whether `method` can analyze here: nlp_api needs Cloud NL configured (without it every
    analysis is the contract's neutral "not configured" result); the others always can."""
    return method != NLP_API_METHOD or nlp_api.CloudNLConfig.from_settings().configured


async def _run(method: str, text: str, llm_json: LLMJsonCall | None) -> Sentiment:
    if method == NLP_API_METHOD:
        return await nlp_api.analyze(text)
    if method == LOCAL_METHOD:
        return await local.analyze(text)
    if method in (LLM_SEPARATE_METHOD, STRUCTURED_METHOD):
        # `structured` sentiment normally comes from StructuredReplyDecoder during the reply;
        # asked for here (a provider without structured output, a re-score) it is classified
        # by the separate call. Without an LLM JSON call (the offline provider), the local
        # analyzer answers, and says so in `source`.
        if llm_json is None:
            return await local.analyze(text)
        return await llm_separate.analyze(text, llm_json=llm_json)
    raise SentimentError(f"unknown method {method!r}", reason="unknown_method")


async def analyze_message(
    *,
    method: str,
    text: str,
    llm_json: LLMJsonCall | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (a bound that answers the fallback, not a cancel)
) -> Sentiment:
    """The sentiment of one user message by `method` (CONTRACT §9.8).

    Never raises (except CancelledError): on failure or after `timeout` seconds
    (default SENTIMENT_TIMEOUT) it returns the neutral fallback, source `default`, with a
    short reason in `details.error`, and logs `sentiment.failed` (never the text).
    """
    if not text.strip():
        return neutral_fallback("empty")
    limit = settings.SENTIMENT_TIMEOUT if timeout is None else timeout
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            result = await _run(method, text, llm_json)
    except Exception as error:
        cause = error.__cause__ if isinstance(error, SentimentError) and error.__cause__ else error
        log.warning(
            "sentiment.failed",
            method=method,
            reason=failure_reason(error),
            error_type=type(cause).__name__,
            text_chars=len(text),
            latency_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return neutral_fallback(failure_reason(error))
    log.debug(
        "sentiment.analyzed",
        method=method,
        source=result.source,
        label=result.label,
        text_chars=len(text),
        latency_ms=round((time.monotonic() - started) * 1000, 1),
    )
    return result
