import asyncio
import json

from sentiment import CumulativeState, Sentiment, fold_cumulative, fold_cumulative_llm, neutral_fallback


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


class FakeLLM:
    def __init__(self, answer, delay: float = 0.0):
        self.answer, self.delay = answer, delay
        self.calls: list[tuple[str, str, dict]] = []

    async def __call__(self, system_prompt, user_text, schema):
        self.calls.append((system_prompt, user_text, schema))
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_the_llm_updates_summary_score_and_label():
    state, _ = fold_cumulative(None, message(0.7, "Positive", "curious"))
    llm = FakeLLM({"summary": "User was curious, now " + "very " * 30 + "upset", "score": -5, "label": "NEGATIVE"})

    new, cumulative = await fold_cumulative_llm(
        state, message(-0.9, "Negative", "upset"), text="This broke everything!", llm_json=llm, timeout=5
    )

    assert (cumulative.score, cumulative.label, cumulative.source) == (-1.0, "Negative", "incremental")
    assert cumulative.summary.startswith("User was curious")
    assert len(cumulative.summary) <= 100
    assert cumulative.emotion == "upset"
    assert new.count == 2
    ((_, user_text, schema),) = llm.calls
    assert "This broke everything!" in user_text
    assert "User is curious" in user_text
    assert schema["required"] == ["summary", "score", "label", "emotion"]


async def test_the_first_message_needs_no_llm_call():
    llm = FakeLLM({"summary": "x", "score": 1})

    _, cumulative = await fold_cumulative_llm(None, message(0.3, "Positive", "calm"), text="hi", llm_json=llm)

    assert llm.calls == []
    assert (cumulative.summary, cumulative.source) == ("User is calm", "incremental")


async def test_an_llm_failure_falls_back_to_the_running_mean():
    state, _ = fold_cumulative(None, message(0.8, "Positive", "happy"))
    for llm, reason in [
        (FakeLLM(RuntimeError("down")), "error"),
        (FakeLLM("not json"), "invalid_response"),
        (FakeLLM({"summary": "x"}, delay=30), "timeout"),
    ]:
        async with asyncio.timeout(10):
            new, cumulative = await fold_cumulative_llm(
                state, message(-0.4, "Negative", "annoyed"), text="meh", llm_json=llm, timeout=0.1
            )

        assert (new.count, new.score) == (2, 0.2)
        assert (cumulative.score, cumulative.label, cumulative.source) == (0.2, "Positive", "incremental_fallback")
        assert cumulative.summary == "User is happy"
        assert cumulative.details == {"error": reason}
