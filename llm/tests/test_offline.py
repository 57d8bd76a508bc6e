import asyncio
import json

import jsonschema
import pytest

from llm import ChatMessage, ChatOptions, Finish, TextDelta, ThoughtDelta, resolve_provider
from llm.providers.offline import OfflineProvider

SENTIMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "sentiment": {
            "type": "object",
            "properties": {
                "score": {"type": "number", "minimum": -1, "maximum": 1},
                "label": {"type": "string", "enum": ["positive", "neutral", "negative"]},
                "emotion": {"type": "string"},
            },
            "required": ["score", "label", "emotion"],
            "additionalProperties": False,
        },
    },
    "required": ["reply", "sentiment"],
    "additionalProperties": False,
}


async def collect(provider, messages, options):
    return [delta async for delta in provider.stream(messages, options)]


def offline(delay_ms: float = 0, thoughts: bool = True) -> OfflineProvider:
    return OfflineProvider(config={"OPTIONS": {"DELAY_MS": delay_ms, "THOUGHTS": thoughts}})


async def test_offline_reply_streams_word_by_word_and_is_deterministic():
    messages = [ChatMessage("user", "Hello there, how are you?")]
    first = await collect(offline(), messages, ChatOptions(model="gemini-2.5-flash"))
    second = await collect(offline(), messages, ChatOptions(model="gemini-2.5-flash"))

    assert first == second
    texts = [d.text for d in first if isinstance(d, TextDelta)]
    assert len(texts) > 10
    reply = "".join(texts)
    assert reply.startswith("Hello!")
    assert "offline" in reply
    assert isinstance(first[-1], Finish)
    assert first[-1].finish_reason == "stop"
    assert first[-1].usage.completion_tokens == len(texts)
    assert first[-1].usage.prompt_tokens > 0


async def test_offline_thoughts_come_before_the_reply_and_can_be_turned_off():
    messages = [ChatMessage("user", "Why is the sky blue?")]
    deltas = await collect(offline(), messages, ChatOptions(model="m"))
    kinds = [type(d) for d in deltas]
    assert kinds.index(TextDelta) > kinds.index(ThoughtDelta)
    assert ThoughtDelta not in kinds[kinds.index(TextDelta) :]

    quiet = await collect(offline(thoughts=False), messages, ChatOptions(model="m"))
    assert not any(isinstance(d, ThoughtDelta) for d in quiet)


async def test_offline_reply_depends_on_the_conversation():
    one = await collect(offline(), [ChatMessage("user", "I love this, thanks!")], ChatOptions(model="m"))
    two = await collect(offline(), [ChatMessage("user", "This is terrible and broken.")], ChatOptions(model="m"))
    text = lambda deltas: "".join(d.text for d in deltas if isinstance(d, TextDelta))  # noqa: E731
    assert text(one) != text(two)
    assert "great" in text(one)
    assert "sorry" in text(two)


async def test_offline_max_tokens_cuts_the_reply_with_finish_reason_length():
    deltas = await collect(offline(), [ChatMessage("user", "hi")], ChatOptions(model="m", max_tokens=3))
    assert sum(isinstance(d, TextDelta) for d in deltas) == 3
    assert deltas[-1].finish_reason == "length"


async def test_offline_paces_tokens_like_a_model():
    provider = offline(delay_ms=20, thoughts=False)
    started = asyncio.get_running_loop().time()
    deltas = await collect(provider, [ChatMessage("user", "hi")], ChatOptions(model="m"))
    elapsed = asyncio.get_running_loop().time() - started
    tokens = sum(isinstance(d, TextDelta) for d in deltas)
    # A lower bound only: the reply is spread over time, not dumped at once.
    assert elapsed >= tokens * 0.02 * 0.5


async def test_offline_streams_json_that_matches_the_requested_schema():
    options = ChatOptions(model="m", json_schema=SENTIMENT_SCHEMA)
    deltas = await collect(offline(), [ChatMessage("user", "I love this, thanks!")], options)
    document = json.loads("".join(d.text for d in deltas if isinstance(d, TextDelta)))

    jsonschema.validate(document, SENTIMENT_SCHEMA)
    assert "offline" in document["reply"]
    assert document["sentiment"]["label"] == "positive"
    assert document["sentiment"]["score"] > 0.1


@pytest.mark.parametrize(
    ("text", "label", "sign"),
    [("I love it, great work", "Positive", 1), ("I hate this awful bug", "Negative", -1), ("ok", "Neutral", 0)],
)
async def test_offline_json_call_answers_sentiment_schemas(text, label, sign):
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": -1.0, "maximum": 1.0},
            "label": {"type": "string", "enum": ["Positive", "Negative", "Neutral"]},
            "emotion": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "confident": {"type": "boolean"},
            "details": {"$ref": "#/$defs/Details"},
        },
        "required": ["score", "label", "emotion", "tags", "confident", "details"],
        "$defs": {"Details": {"type": "object", "properties": {"count": {"type": "integer", "minimum": 1}}}},
    }
    result = await offline().complete_json([ChatMessage("user", text)], ChatOptions(model="m"), schema)

    jsonschema.validate(result, schema)
    assert result["label"] == label
    assert (result["score"] > 0) - (result["score"] < 0) == sign
    assert result["emotion"]


async def test_closing_the_offline_stream_early_stops_it():
    stream = offline(delay_ms=1).stream([ChatMessage("user", "hi")], ChatOptions(model="m"))
    first = await anext(stream)
    await stream.aclose()
    assert isinstance(first, ThoughtDelta)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_offline_provider_from_settings_uses_the_configured_pace(settings):
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "offline": {"BACKEND": "llm.providers.offline.OfflineProvider", "OPTIONS": {"DELAY_MS": 7, "THOUGHTS": False}},
    }
    provider = resolve_provider("offline", "lia-offline").provider
    assert provider.delay == pytest.approx(0.007)
    assert provider.thoughts is False
