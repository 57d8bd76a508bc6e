import json

from sentiment import Sentiment


def compact(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def test_event_form_has_the_contract_keys_in_order():
    sentiment = Sentiment(score=0.8, label="Positive", emotion="friendly", summary="User is friendly", source="x")

    assert compact(sentiment.to_event()) == (
        '{"score":0.8,"label":"Positive","emotion":"friendly","summary":"User is friendly"}'
    )


def test_event_form_keeps_a_null_emotion_and_drops_an_empty_summary():
    sentiment = Sentiment(score=-0.123456, label="Negative", emotion=None, summary="", details={"a": 1})

    assert compact(sentiment.to_event()) == '{"score":-0.1235,"label":"Negative","emotion":null}'


def test_stored_form_adds_source_and_only_non_empty_details():
    plain = Sentiment(score=0.0, label="Neutral", emotion="neutral", source="default", details={})
    detailed = Sentiment(score=0.2, label="Positive", emotion=None, source="nlp_api", details={"magnitude": 0.6})

    assert plain.to_stored() == {"score": 0.0, "label": "Neutral", "emotion": "neutral", "source": "default"}
    assert list(detailed.to_stored()) == ["score", "label", "emotion", "source", "details"]
    assert detailed.to_stored()["details"] == {"magnitude": 0.6}


def test_stored_form_round_trips():
    sentiment = Sentiment(
        score=0.4, label="Positive", emotion="hopeful", summary="User is hopeful", source="incremental"
    )

    assert Sentiment.from_stored(json.loads(json.dumps(sentiment.to_stored()))) == sentiment


def test_reading_stored_data_normalises_what_older_backends_left_raw():
    restored = Sentiment.from_stored({"score": 3, "label": "POSITIVE", "emotion": "  Excited  "})

    assert restored == Sentiment(score=1.0, label="Positive", emotion="excited", source="default")
