import json

from sentiment import CumulativeState, Sentiment, fold_cumulative, neutral_fallback


def message(score: float, label: str, emotion: str | None = None) -> Sentiment:
    return Sentiment(score=score, label=label, emotion=emotion, source="llm_separate")


def stored(state: CumulativeState) -> CumulativeState:
    """What the Conversation's JSON field gives back on the next turn."""
    return CumulativeState.from_dict(json.loads(json.dumps(state.to_dict())))


def test_the_first_message_becomes_the_cumulative():
    state, cumulative = fold_cumulative(None, message(0.8, "Positive", "friendly"))

    assert cumulative.to_event() == {
        "score": 0.8,
        "label": "Positive",
        "emotion": "friendly",
        "summary": "User is friendly",
    }
    assert cumulative.source == "incremental"
    assert state.to_dict() == {
        "summary": "User is friendly",
        "score": 0.8,
        "count": 1,
        "label": "Positive",
        "emotion": "friendly",
    }


def test_without_an_emotion_the_first_summary_uses_the_label():
    _, cumulative = fold_cumulative(CumulativeState(), message(-0.5, "Negative"))

    assert cumulative.summary == "User is negative"


def test_five_turns_follow_the_running_mean_rule():
    turns = [
        message(0.8, "Positive", "excited"),
        message(-0.4, "Negative", "annoyed"),
        message(0.2, "Positive", "hopeful"),
        message(-1.0, "Negative", "angry"),
        message(-0.3, "Negative", None),
    ]
    state: CumulativeState | None = None
    mean, results = 0.0, []
    for count, turn in enumerate(turns):
        expected = (mean * count + turn.score) / (count + 1)
        state, cumulative = fold_cumulative(state, turn)
        state = stored(state)
        mean = expected
        results.append(cumulative)

        assert state.count == count + 1
        assert abs(state.score - expected) < 1e-6
        assert cumulative.score == round(expected, 4)

    assert [r.score for r in results] == [0.8, 0.2, 0.2, -0.1, -0.14]
    assert [r.label for r in results] == ["Positive", "Positive", "Positive", "Neutral", "Negative"]
    assert [r.source for r in results] == ["incremental"] + ["incremental_fallback"] * 4
    assert {r.summary for r in results} == {"User is excited"}
    assert [r.emotion for r in results] == ["excited", "annoyed", "hopeful", "angry", "angry"]


def test_a_failed_analysis_leaves_the_state_unchanged():
    state, _ = fold_cumulative(None, message(0.6, "Positive", "glad"))

    new, cumulative = fold_cumulative(state, neutral_fallback("timeout"))

    assert new == state
    assert (cumulative.score, cumulative.label, cumulative.source) == (0.6, "Positive", "incremental_unchanged")
    assert cumulative.summary == "User is glad"


def test_a_failed_first_analysis_remembers_nothing():
    state, cumulative = fold_cumulative(None, neutral_fallback("timeout"))

    assert state.count == 0
    assert cumulative.to_event() == {
        "score": 0.0,
        "label": "Neutral",
        "emotion": "neutral",
        "summary": "User is neutral",
    }
    assert fold_cumulative(state, message(-0.6, "Negative", "sad"))[1].source == "incremental"


def test_a_stored_state_from_the_old_backend_is_read():
    state = CumulativeState.from_dict({"summary": "User is calm", "score": 7, "count": 3, "label": "positive"})

    assert state == CumulativeState(summary="User is calm", score=1.0, count=3, label="Positive", emotion=None)
    assert CumulativeState.from_dict(None) == CumulativeState()
    assert CumulativeState.from_dict({"count": "many", "score": "x"}).count == 0


def test_summaries_stay_within_100_characters():
    _, cumulative = fold_cumulative(None, Sentiment(0.9, "Positive", "x" * 200, source="llm_separate"))

    assert cumulative.summary is not None
    assert len(cumulative.summary) <= 100
