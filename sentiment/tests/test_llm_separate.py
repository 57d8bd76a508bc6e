import pytest

from sentiment import analyze_message
from sentiment.analyzers.llm_separate import SCHEMA, SYSTEM_PROMPT


class FakeLLM:
    """An LLMJsonCall that records its calls and answers what it was given."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[tuple[str, str, dict]] = []

    async def __call__(self, system_prompt: str, user_text: str, schema: dict):
        self.calls.append((system_prompt, user_text, schema))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_the_separate_call_gets_the_prompt_the_message_and_the_schema():
    llm = FakeLLM({"score": 0.72, "label": "Positive", "emotion": "excited"})

    result = await analyze_message(method="llm_separate", text="Can't wait for the trip!", llm_json=llm)

    assert llm.calls == [(SYSTEM_PROMPT, "Can't wait for the trip!", SCHEMA)]
    assert result.to_stored() == {"score": 0.72, "label": "Positive", "emotion": "excited", "source": "llm_separate"}


def test_the_schema_asks_for_score_label_and_emotion():
    assert SCHEMA["required"] == ["score", "label", "emotion"]
    assert SCHEMA["properties"]["label"]["enum"] == ["Positive", "Negative", "Neutral"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"score": 5, "label": "POSITIVE", "emotion": "Very Happy"}, (1.0, "Positive", "very happy")),
        ({"score": "-0.4", "label": "negative ", "emotion": ""}, (-0.4, "Negative", None)),
        ({"score": -0.6, "emotion": "sad"}, (-0.6, "Negative", "sad")),
        ({"label": "neutral"}, (0.0, "Neutral", None)),
        ('{"score": 0.3, "label": "pos", "emotion": "content"}', (0.3, "Positive", "content")),
        ({"sentiment": {"score": -2, "label": "NEG"}}, (-1.0, "Negative", None)),
    ],
)
async def test_whatever_the_llm_returns_is_normalised(answer, expected):
    result = await analyze_message(method="llm_separate", text="hi", llm_json=FakeLLM(answer))

    assert (result.score, result.label, result.emotion) == expected
    assert result.source == "llm_separate"


@pytest.mark.parametrize(
    "answer",
    ['{"score": 0.5', "Positive!", ["Positive"], {"mood": "great"}, None],
)
async def test_an_unusable_answer_gives_the_marked_neutral_result(answer):
    result = await analyze_message(method="llm_separate", text="hi", llm_json=FakeLLM(answer))

    assert result.to_stored() == {
        "score": 0.0,
        "label": "Neutral",
        "emotion": "neutral",
        "source": "default",
        "details": {"error": "invalid_response"},
    }


async def test_a_failing_call_gives_the_marked_neutral_result():
    result = await analyze_message(method="llm_separate", text="hi", llm_json=FakeLLM(RuntimeError("429 quota")))

    assert (result.label, result.source, result.details) == ("Neutral", "default", {"error": "error"})
