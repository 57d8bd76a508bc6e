"""Clamp and normalise whatever an analyzer (or an LLM) returns (CONTRACT §9.6, §11 W9).

Every function here is total: bad input gives a safe value, never an exception.
"""

import math
import re
from typing import Any

from sentiment.types import NEGATIVE, NEUTRAL, POSITIVE, SCORE_DECIMALS, Sentiment

POSITIVE_THRESHOLD = 0.1
NEGATIVE_THRESHOLD = -0.1
EMOTION_MAX_WORDS = 5
EMOTION_MAX_CHARS = 60
SUMMARY_MAX_CHARS = 100

_LABEL_ALIASES = {
    "positive": POSITIVE,
    "pos": POSITIVE,
    "good": POSITIVE,
    "favorable": POSITIVE,
    "favourable": POSITIVE,
    "negative": NEGATIVE,
    "neg": NEGATIVE,
    "bad": NEGATIVE,
    "unfavorable": NEGATIVE,
    "unfavourable": NEGATIVE,
    "neutral": NEUTRAL,
    "neu": NEUTRAL,
    "mixed": NEUTRAL,
    "none": NEUTRAL,
}
_WHITESPACE = re.compile(r"\s+")
_EDGE_PUNCTUATION = " \t\n.,;:!?\"'`*_()[]{}"


def label_for_score(score: float) -> str:
    """The label where one must be derived from the score: > 0.1, < -0.1, else Neutral."""
    if score > POSITIVE_THRESHOLD:
        return POSITIVE
    if score < NEGATIVE_THRESHOLD:
        return NEGATIVE
    return NEUTRAL


def normalize_score(value: Any) -> float | None:
    """A score in -1..1 rounded to 4 decimals; None when missing or not a number.

    Numeric strings are accepted, out-of-range values clamped, NaN and infinities become 0.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number):
        return 0.0
    number = max(-1.0, min(1.0, number))
    return round(number, SCORE_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def normalize_label(value: Any) -> str | None:
    """`Positive`, `Negative` or `Neutral` from any casing or common alias; None if unknown."""
    if not isinstance(value, str):
        return None
    text = value.strip(_EDGE_PUNCTUATION).lower()
    if text in _LABEL_ALIASES:
        return _LABEL_ALIASES[text]
    words = set(re.findall(r"[a-z]+", text))
    found = {_LABEL_ALIASES[word] for word in words & {"positive", "negative", "neutral"}}
    return found.pop() if len(found) == 1 else None


def valid_unicode(text: str) -> str:
    """`text` with any unpaired UTF-16 surrogate (JSON can carry one as `\\ud83d`) made U+FFFD:
    it could be neither stored nor sent (found by an audit: a stored one made the conversation's
    page a 500)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def normalize_emotion(value: Any) -> str | None:
    """1-5 lower-case words, or None when there is nothing usable."""
    if not isinstance(value, str):
        return None
    words = _WHITESPACE.sub(" ", valid_unicode(value)).strip(_EDGE_PUNCTUATION).split(" ")
    emotion = " ".join(words[:EMOTION_MAX_WORDS]).lower()[:EMOTION_MAX_CHARS].strip(_EDGE_PUNCTUATION)
    return emotion or None


def normalize_summary(value: Any) -> str | None:
    """One line of at most 100 characters (cut at a word, with an ellipsis), or None."""
    if not isinstance(value, str):
        return None
    text = _WHITESPACE.sub(" ", valid_unicode(value)).strip()
    if len(text) <= SUMMARY_MAX_CHARS:
        return text or None
    cut = text[: SUMMARY_MAX_CHARS - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "…"


def normalize_sentiment(raw: Any, *, source: str, details: dict[str, Any] | None = None) -> Sentiment:
    """A Sentiment from a loosely shaped dict: `score`, `label` (or `sentiment`), `emotion`.

    A missing label is derived from the score; a missing score is 0. Anything but a dict
    counts as an empty dict.
    """
    data = raw if isinstance(raw, dict) else {}
    score = normalize_score(data.get("score"))
    label = normalize_label(data.get("label")) or normalize_label(data.get("sentiment"))
    if score is None:
        score = 0.0
    return Sentiment(
        score=score,
        label=label or label_for_score(score),
        emotion=normalize_emotion(data.get("emotion")),
        source=source,
        details=details or None,
    )


def neutral_fallback(error: str | None = None) -> Sentiment:
    """The result when analysis failed: Neutral 0.0, emotion `neutral`, source `default`."""
    return Sentiment(
        score=0.0,
        label=NEUTRAL,
        emotion="neutral",
        source="default",
        details={"error": error} if error else None,
    )


NEUTRAL_FALLBACK = neutral_fallback()
