"""Sentiment analysis for Lia: message sentiment by method, cumulative aggregation.

Other apps use only what this module exports. `sentiment` is a leaf: it imports no other
Lia app; strategies that need an LLM receive an `LLMJsonCall` from conversations.
"""

from sentiment.normalize import NEUTRAL_FALLBACK, label_for_score, neutral_fallback, normalize_sentiment
from sentiment.types import LLMJsonCall, Sentiment

__all__ = [
    "NEUTRAL_FALLBACK",
    "LLMJsonCall",
    "Sentiment",
    "label_for_score",
    "neutral_fallback",
    "normalize_sentiment",
]
