"""Sentiment analysis for Lia: message sentiment by method, cumulative aggregation.

Other apps use only what this module exports. `sentiment` is a leaf: it imports no other
Lia app; strategies that need an LLM receive an `LLMJsonCall` from conversations.
"""

from sentiment.analyzers.structured import STRUCTURED_INSTRUCTIONS, STRUCTURED_SCHEMA, StructuredReplyDecoder
from sentiment.cumulative import CumulativeState, fold_cumulative
from sentiment.normalize import (
    NEUTRAL_FALLBACK,
    label_for_score,
    neutral_fallback,
    normalize_sentiment,
    valid_unicode,
)
from sentiment.services import (
    DEFAULT_METHOD,
    LLM_SEPARATE_METHOD,
    LOCAL_METHOD,
    METHODS,
    NLP_API_METHOD,
    STRUCTURED_METHOD,
    analyze_message,
    method_configured,
    preload_analyzers,
)
from sentiment.types import LLMJsonCall, Sentiment

__all__ = [
    "DEFAULT_METHOD",
    "LLM_SEPARATE_METHOD",
    "LOCAL_METHOD",
    "METHODS",
    "NEUTRAL_FALLBACK",
    "NLP_API_METHOD",
    "STRUCTURED_INSTRUCTIONS",
    "STRUCTURED_METHOD",
    "STRUCTURED_SCHEMA",
    "CumulativeState",
    "LLMJsonCall",
    "Sentiment",
    "StructuredReplyDecoder",
    "analyze_message",
    "fold_cumulative",
    "label_for_score",
    "method_configured",
    "neutral_fallback",
    "normalize_sentiment",
    "preload_analyzers",
    "valid_unicode",
]
