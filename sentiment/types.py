"""The Sentiment value (CONTRACT §9.6) and the shapes other apps hand to this one."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

POSITIVE = "Positive"
NEGATIVE = "Negative"
NEUTRAL = "Neutral"
LABELS = (POSITIVE, NEGATIVE, NEUTRAL)

# `await llm_json(system_prompt, user_text, schema)` -> the provider's parsed JSON object.
# conversations builds it from the chat's provider and model; it may raise anything.
LLMJsonCall = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]

SCORE_DECIMALS = 4


@dataclass(frozen=True, slots=True)
class Sentiment:
    """One sentiment result: a message's or the conversation's cumulative one.

    Build it through `normalize_sentiment` (or the analyzers) so that score and label are
    always in range; the constructor itself does not check.
    """

    score: float
    label: str
    emotion: str | None
    summary: str | None = None
    source: str = "default"
    details: dict[str, Any] | None = None

    def to_event(self) -> dict[str, Any]:
        """The slim form of the `sentiment` stream event (CONTRACT §7.10), keys in order."""
        data: dict[str, Any] = {
            "score": round(self.score, SCORE_DECIMALS),
            "label": self.label,
            "emotion": self.emotion,
        }
        if self.summary:
            data["summary"] = self.summary
        return data

    def to_stored(self) -> dict[str, Any]:
        """The stored form inside `sentiment_data` (CONTRACT §9.5, §9.6)."""
        data = self.to_event()
        data["source"] = self.source
        if self.details:
            data["details"] = dict(self.details)
        return data

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> "Sentiment":
        """Read a stored object back, normalising values that older backends left raw."""
        from sentiment.normalize import normalize_sentiment, normalize_summary

        source = data.get("source")
        details = data.get("details")
        base = normalize_sentiment(
            data,
            source=source if isinstance(source, str) and source else "default",
            details=details if isinstance(details, dict) else None,
        )
        return cls(
            score=base.score,
            label=base.label,
            emotion=base.emotion,
            summary=normalize_summary(data.get("summary")),
            source=base.source,
            details=base.details,
        )
