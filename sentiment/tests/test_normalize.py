import json
import math

import pytest

from sentiment import NEUTRAL_FALLBACK, Sentiment, label_for_score, neutral_fallback, normalize_sentiment
from sentiment.normalize import normalize_emotion, normalize_summary


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("POSITIVE", "Positive"),
        ("positive ", "Positive"),
        ("Pos", "Positive"),
        ("very positive", "Positive"),
        ("negative.", "Negative"),
        ("NEG", "Negative"),
        ("Neutral", "Neutral"),
        ("mixed", "Neutral"),
    ],
)
def test_labels_are_normalised_from_any_casing_or_alias(label, expected):
    assert normalize_sentiment({"score": 0.0, "label": label}, source="t").label == expected


@pytest.mark.parametrize(
    ("raw", "score", "label"),
    [
        ({"score": 5}, 1.0, "Positive"),
        ({"score": -7.5}, -1.0, "Negative"),
        ({"score": "0.75"}, 0.75, "Positive"),
        ({"score": " -0.3 "}, -0.3, "Negative"),
        ({"score": "very"}, 0.0, "Neutral"),
        ({"score": math.nan}, 0.0, "Neutral"),
        ({"score": math.inf}, 0.0, "Neutral"),
        ({"score": True}, 0.0, "Neutral"),
        ({"score": None}, 0.0, "Neutral"),
        ({"score": 0.123456}, 0.1235, "Positive"),
        ({"score": 0.1}, 0.1, "Neutral"),
        ({"score": -0.1}, -0.1, "Neutral"),
        ({"score": -0.1001}, -0.1001, "Negative"),
        ({"score": 0.4, "label": "sideways"}, 0.4, "Positive"),
        ({}, 0.0, "Neutral"),
    ],
)
def test_scores_are_clamped_rounded_and_a_missing_label_comes_from_the_score(raw, score, label):
    result = normalize_sentiment(raw, source="t")

    assert (result.score, result.label) == (score, label)


def test_a_given_label_is_kept_even_when_the_score_disagrees():
    assert normalize_sentiment({"score": 0.05, "label": "positive"}, source="t").label == "Positive"


def test_anything_but_a_dict_is_read_as_empty():
    assert normalize_sentiment(["Positive"], source="t") == Sentiment(0.0, "Neutral", None, source="t")


@pytest.mark.parametrize(
    ("emotion", "expected"),
    [
        ("Curious", "curious"),
        ("  very   Happy\nand excited today, really truly ", "very happy and excited today"),
        ("grateful.", "grateful"),
        ("", None),
        ("   ", None),
        (42, None),
        (None, None),
    ],
)
def test_emotion_is_at_most_five_lower_case_words_or_null(emotion, expected):
    assert normalize_emotion(emotion) == expected


def test_summary_is_cut_to_100_characters_at_a_word():
    summary = normalize_summary("User started curious " + "and then grew more and more frustrated " * 5)

    assert summary is not None
    assert len(summary) <= 100
    assert summary.endswith("…")
    assert normalize_summary("  ") is None


def test_label_thresholds():
    assert [label_for_score(s) for s in (0.11, 0.1, 0.0, -0.1, -0.11)] == [
        "Positive",
        "Neutral",
        "Neutral",
        "Neutral",
        "Negative",
    ]


def test_neutral_fallback_is_the_contract_default_marked_with_the_reason():
    assert NEUTRAL_FALLBACK.to_stored() == {"score": 0.0, "label": "Neutral", "emotion": "neutral", "source": "default"}
    assert neutral_fallback("timeout").to_stored()["details"] == {"error": "timeout"}


def test_unpaired_surrogates_in_an_answer_become_replacement_characters():
    """An LLM's JSON can carry `\\ud83d` alone; stored, it made the conversation's page a 500
    on SQLite and the final save fail on PostgreSQL (found by an audit)."""
    sentiment = normalize_sentiment({"score": 0.5, "emotion": "happy \ud83d"}, source="llm_separate")

    assert sentiment.emotion == "happy \ufffd"
    assert normalize_summary("User is \udc00 calm") == "User is \ufffd calm"
    assert normalize_emotion("joy \U0001f600") == "joy \U0001f600"  # a real pair is kept
    json.dumps(sentiment.emotion, ensure_ascii=False).encode()  # encodable
