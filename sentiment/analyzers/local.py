"""Method `local`: offline analysis with VADER (vaderSentiment ships its lexicon; no network).

VADER's compound score is the score; the emotion is a keyword whose polarity agrees with the
label (so "not sad" is not called sad), else a word for the score band. English only: other
languages mostly come out Neutral.
"""

import asyncio
import functools
import re

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from sentiment.normalize import label_for_score, normalize_score
from sentiment.types import NEGATIVE, NEUTRAL, POSITIVE, Sentiment

SOURCE = "local"

# emotion -> (labels it may describe, trigger words); the first match in this order wins.
_EMOTIONS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    ("grateful", frozenset({POSITIVE}), frozenset({"thank", "thanks", "thankful", "grateful", "appreciate"})),
    ("excited", frozenset({POSITIVE}), frozenset({"excited", "thrilled", "exciting", "stoked"})),
    ("happy", frozenset({POSITIVE}), frozenset({"happy", "glad", "love", "delighted", "joy", "great", "awesome"})),
    ("angry", frozenset({NEGATIVE}), frozenset({"angry", "furious", "mad", "hate", "livid", "outraged"})),
    ("frustrated", frozenset({NEGATIVE}), frozenset({"frustrated", "frustrating", "annoyed", "annoying", "ugh"})),
    ("sad", frozenset({NEGATIVE}), frozenset({"sad", "unhappy", "depressed", "miserable", "lonely", "crying"})),
    ("anxious", frozenset({NEGATIVE}), frozenset({"worried", "anxious", "nervous", "scared", "afraid", "stressed"})),
    ("confused", frozenset({NEGATIVE, NEUTRAL}), frozenset({"confused", "confusing", "unsure", "puzzled"})),
)
_WORD = re.compile(r"[a-z']+")


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # loads the bundled lexicon once per process (~50 ms)


def preload() -> None:
    _analyzer()


def _emotion(text: str, score: float, label: str) -> str:
    words = set(_WORD.findall(text.lower()))
    for emotion, labels, triggers in _EMOTIONS:
        if label in labels and words & triggers:
            return emotion
    if label == POSITIVE:
        return "happy" if score >= 0.5 else "pleased"
    if label == NEGATIVE:
        return "upset" if score <= -0.5 else "dissatisfied"
    return "curious" if "?" in text else "neutral"


# VADER's cost grows faster than linearly with length (0.4 s for 10 000 characters, 30 s for
# 100 000): a message's opening is what it analyses.
MAX_ANALYSED_CHARS = 10_000


def analyze_sync(text: str) -> Sentiment:
    text = text[:MAX_ANALYSED_CHARS]
    compound = _analyzer().polarity_scores(text)["compound"]
    score = normalize_score(compound) or 0.0
    label = label_for_score(score)
    return Sentiment(
        score=score,
        label=label,
        emotion=_emotion(text, score, label),
        source=SOURCE,
        details={"analyzer": "vader"},
    )


async def analyze(text: str) -> Sentiment:
    # VADER is pure Python and superlinear on long input (~0.5 s for 10 000 chars): keep it
    # off the event loop.
    return await asyncio.to_thread(analyze_sync, text)
