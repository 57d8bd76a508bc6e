"""The conversation's cumulative sentiment (CONTRACT §9.7), folded in one message at a time.

The state `{summary, score, count, label, emotion}` lives on the Conversation (a JSON field
written by conversations); `count` is the number of user messages folded in. Folding is O(1)
and never recomputes from history:

- first message: the cumulative is the message sentiment, summary "User is <emotion, or
  label in lower case>", source `incremental`;
- later messages: the running mean `(old * count + score) / (count + 1)`, the label from the
  thresholds, the previous summary kept, the message's emotion (else the previous one),
  source `incremental_fallback` (the contract's other way, an LLM updating the summary, score
  and label, would be a second LLM call every turn, inside the final save's row lock: Lia
  doesn't make it);
- a message whose own analysis failed (source `default`) is not folded in: it would pull
  the mean towards 0 for no reason. The state is returned unchanged and the cumulative has
  source `incremental_unchanged`.
"""

from dataclasses import dataclass, replace
from typing import Any

from sentiment.normalize import (
    label_for_score,
    normalize_emotion,
    normalize_label,
    normalize_score,
    normalize_summary,
)
from sentiment.types import NEUTRAL, SCORE_DECIMALS, Sentiment

SOURCE_FIRST = "incremental"
SOURCE_MEAN = "incremental_fallback"
SOURCE_UNCHANGED = "incremental_unchanged"
FAILED_MESSAGE_SOURCE = "default"
STATE_DECIMALS = 6


@dataclass(slots=True)
class CumulativeState:
    summary: str | None = None
    score: float = 0.0
    count: int = 0
    label: str = NEUTRAL
    emotion: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "score": self.score,
            "count": self.count,
            "label": self.label,
            "emotion": self.emotion,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "CumulativeState":
        """Read a stored state (also the FastAPI backend's, which has no emotion); None -> empty."""
        if not isinstance(data, dict):
            return cls()
        score = normalize_score(data.get("score")) or 0.0
        count = data.get("count")
        return cls(
            summary=normalize_summary(data.get("summary")),
            score=score,
            count=count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0,
            label=normalize_label(data.get("label")) or label_for_score(score),
            emotion=normalize_emotion(data.get("emotion")),
        )

    def to_sentiment(self, *, source: str, details: dict[str, Any] | None = None) -> Sentiment:
        return Sentiment(
            score=round(self.score, SCORE_DECIMALS) + 0.0,
            label=self.label,
            emotion=self.emotion,
            summary=self.summary,
            source=source,
            details=details or None,
        )


def first_summary(message: Sentiment) -> str:
    return normalize_summary(f"User is {message.emotion or message.label.lower()}") or "User is neutral"


def fold_cumulative(state: CumulativeState | None, message: Sentiment) -> tuple[CumulativeState, Sentiment]:
    """Fold one message sentiment into the state by the running-mean rule; pure, O(1)."""
    state = state or CumulativeState()
    if message.source == FAILED_MESSAGE_SOURCE:
        return _unchanged(state, message)
    if state.count == 0:
        new = CumulativeState(
            summary=first_summary(message),
            score=message.score,
            count=1,
            label=message.label,
            emotion=message.emotion,
        )
        return new, new.to_sentiment(source=SOURCE_FIRST)
    score = round((state.score * state.count + message.score) / (state.count + 1), STATE_DECIMALS) + 0.0
    new = CumulativeState(
        summary=state.summary or first_summary(message),
        score=score,
        count=state.count + 1,
        label=label_for_score(score),
        emotion=message.emotion or state.emotion,
    )
    return new, new.to_sentiment(source=SOURCE_MEAN)


def _unchanged(state: CumulativeState, message: Sentiment) -> tuple[CumulativeState, Sentiment]:
    if state.count == 0:
        # Nothing to keep yet: show the (neutral) message result and remember nothing.
        shown = replace(message, summary=first_summary(message), source=SOURCE_UNCHANGED, details=None)
        return CumulativeState(), shown
    return replace(state), state.to_sentiment(source=SOURCE_UNCHANGED)
