"""Sentiment in the chat stream (CONTRACT §7.10, §9.5-9.8), by each method, through the real SDKs
and the real Cloud NL client against their fakes, and the local analyzer offline."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation, Message
from conversations.tests.conftest import open_stream, read_until

pytestmark = pytest.mark.django_db(transaction=True)


def chat(message: str, method: str, provider: str = "openai", model: str = "gpt-4o", **extra: object) -> dict:
    return {"message": message, "provider": provider, "model": model, "sentiment_method": method, **extra}


def sentiment_of(events: list) -> dict:
    [data] = [data for _, name, data in events if name == "sentiment"]
    return data


async def user_message(events: list) -> Message:
    return await sync_to_async(Message.objects.get)(pk=events[0][2]["message_id"])


# --- local (offline) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I absolutely love this, thank you so much, it's wonderful!", "Positive"),
        ("This is terrible, I hate it and I'm furious.", "Negative"),
        ("The meeting is at 3pm in room 4.", "Neutral"),
    ],
)
async def test_local_analyzer_labels_strong_sentences(stream, alice, text, label):
    _, events = await stream(alice, chat(text, "local", provider="gemini", model="gemini-2.5-flash"))

    event = sentiment_of(events)
    assert event["message"]["label"] == label
    assert list(event["message"]) == ["score", "label", "emotion"]
    assert event["cumulative"]["label"] == label
    assert event["cumulative"]["summary"].startswith("User is ")
    stored = (await user_message(events)).sentiment_data
    assert stored["message"]["source"] == "local"
    assert stored["message"]["score"] == event["message"]["score"]
    assert stored["cumulative"]["source"] == "incremental"


@pytest.mark.parametrize("method", ["llm_separate", "structured"])
async def test_llm_methods_use_the_local_analyzer_when_answered_offline(stream, alice, method):
    _, events = await stream(alice, chat("I love it, thanks!", method, provider="gemini", model="gemini-2.5-flash"))

    assert sentiment_of(events)["message"]["label"] == "Positive"
    assert (await user_message(events)).sentiment_data["message"]["source"] == "local"
    reply = "".join(data["content"] for _, name, data in events if name == "chunk")
    assert not reply.lstrip().startswith("{")


# --- llm_separate -------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o"), ("gemini", "gemini-2.5-flash")])
async def test_llm_separate_through_the_sdk(stream, alice, fake_llm_providers, provider, model):
    fake_llm_providers.script(text="Happy to help!", json={"score": 0.72, "label": "positive", "emotion": "Curious"})

    _, events = await stream(alice, chat("How do volcanoes work?", "llm_separate", provider, model))

    assert sentiment_of(events)["message"] == {"score": 0.72, "label": "Positive", "emotion": "curious"}
    stored = (await user_message(events)).sentiment_data["message"]
    assert stored["source"] == "llm_separate"
    assert stored["details"] == {"provider": provider, "model": model}
    json_calls = [r for r in fake_llm_providers.requests if not (r.body.get("stream") or "stream" in r.path)]
    assert len(json_calls) == 1
    assert "How do volcanoes work?" in json.dumps(json_calls[0].body)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"score": 5, "label": "POSITIVE", "emotion": "Very Very Happy Indeed Today Friend"}, (1.0, "Positive")),
        ({"score": -3.5, "label": "neg", "emotion": "sad"}, (-1.0, "Negative")),
        ({"score": "0.05", "label": "mixed", "emotion": ""}, (0.05, "Neutral")),
        ({"score": 0.123456789, "label": "Positive", "emotion": None}, (0.1235, "Positive")),
    ],
)
async def test_llm_answers_are_normalised_and_clamped(stream, alice, fake_llm_providers, answer, expected):
    fake_llm_providers.script(text="Okay.", json=answer)

    _, events = await stream(alice, chat("hmm", "llm_separate"))

    message = sentiment_of(events)["message"]
    assert (message["score"], message["label"]) == expected
    assert message["emotion"] is None or len(message["emotion"].split()) <= 5


@pytest.mark.parametrize("answer", ["not json at all", ["a", "list"], {"unrelated": True}])
async def test_unusable_llm_answers_give_a_marked_neutral_result_and_a_complete_reply(
    stream, alice, fake_llm_providers, answer
):
    fake_llm_providers.script(text="Still answering.", json=answer)

    _, events = await stream(alice, chat("hello", "llm_separate"))

    assert [name for _, name, _ in events][-2:] == ["sentiment", "done"]
    assert sentiment_of(events)["message"] == {"score": 0.0, "label": "Neutral", "emotion": "neutral"}
    stored = (await user_message(events)).sentiment_data["message"]
    assert stored["source"] == "default"
    assert stored["details"]["error"]
    conversation = await sync_to_async(Conversation.objects.get)(pk=events[0][2]["conversation_id"])
    assistant = await sync_to_async(conversation.messages.get)(role="assistant")
    assert (assistant.content, assistant.status) == ("Still answering.", "complete")


async def test_a_sentiment_call_that_times_out_does_not_break_the_turn(stream, alice, fake_llm_providers, settings):
    settings.SENTIMENT_TIMEOUT = 0.3
    fake_llm_providers.script(text="Fine reply.", json={"score": 0.9, "label": "Positive"}, json_delay=2)

    _, events = await stream(alice, chat("hello", "llm_separate"))

    assert events[-1][1] == "done"
    stored = (await user_message(events)).sentiment_data["message"]
    assert (stored["label"], stored["source"], stored["details"]["error"]) == ("Neutral", "default", "timeout")


async def test_llm_separate_does_not_delay_the_first_chunk(alice, fake_llm_providers):
    fake_llm_providers.script(
        chunks=["One ", "two ", "three."], delay=0.02, json={"score": 0.5, "label": "Positive"}, json_delay=1.0
    )
    communicator = await open_stream(alice.token, chat("hello", "llm_separate"))

    await read_until(communicator, 1)
    json_calls = []
    for _ in range(100):  # the call may reach the fake just after the stream's request
        json_calls = [r for r in fake_llm_providers.requests if not r.body.get("stream")]
        if json_calls:
            break
        await asyncio.sleep(0.01)
    assert [call.outcome for call in json_calls] == ["pending"]  # the first chunk came first

    received = b""
    while b"event: done" not in received:
        received += (await communicator.receive_output(timeout=5)).get("body", b"")
    await communicator.wait(timeout=5)
    assert b'"label":"Positive"' in received


async def test_the_sentiment_call_starts_after_the_first_chunk(alice, fake_llm_providers):
    """Not even its request's CPU competes with the reply's first token."""
    fake_llm_providers.script(chunks=["One ", "two."], first_delay=0.3, json={"score": 0.5, "label": "Positive"})
    communicator = await open_stream(alice.token, chat("hello", "llm_separate"))

    await read_until(communicator, 0)  # start
    await asyncio.sleep(0.2)
    assert [bool(r.body.get("stream")) for r in fake_llm_providers.requests] == [True]

    received = b""
    while b"event: done" not in received:
        received += (await communicator.receive_output(timeout=5)).get("body", b"")
    await communicator.wait(timeout=5)
    assert [bool(r.body.get("stream")) for r in fake_llm_providers.requests] == [True, False]
    assert b'"label":"Positive"' in received


# --- structured -----------------------------------------------------------------------------------

REPLY = 'He said "hi"\nthen left {quietly} 😀 — ünïcödé \\ done.'


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o"), ("gemini", "gemini-2.5-flash")])
async def test_structured_streams_only_the_reply_text(stream, alice, fake_llm_providers, provider, model):
    document = {"reply": REPLY, "sentiment": {"score": 0.8, "label": "Positive", "emotion": "amused"}}
    fake_llm_providers.script(json=document)

    _, events = await stream(alice, chat("Tell me a story", "structured", provider, model))

    chunks = [data["content"] for _, name, data in events if name == "chunk"]
    assert len(chunks) > 3  # really streamed, not decoded at the end
    assert "".join(chunks) == REPLY
    for chunk in chunks:
        assert '"reply"' not in chunk
        assert '"sentiment"' not in chunk
    assert sentiment_of(events)["message"] == {"score": 0.8, "label": "Positive", "emotion": "amused"}
    user = await user_message(events)
    assert user.sentiment_data["message"]["source"] == "structured"
    assistant = await sync_to_async(Message.objects.get)(pk=user.pk + 1)
    assert assistant.content == REPLY
    request = fake_llm_providers.last.body
    assert "json_schema" in json.dumps(request) or "responseJsonSchema" in json.dumps(request)
    assert len(fake_llm_providers.requests) == 1  # one provider call for reply and sentiment


async def test_structured_document_without_sentiment_falls_back(stream, alice, fake_llm_providers):
    fake_llm_providers.script(json={"reply": "Just text.", "sentiment": {"score": "??"}})

    _, events = await stream(alice, chat("hi", "structured"))

    assert "".join(d["content"] for _, n, d in events if n == "chunk") == "Just text."
    assert sentiment_of(events)["message"]["label"] == "Neutral"


async def test_structured_document_in_a_code_fence_streams_only_the_reply(stream, alice, scripted):
    """A server that ignores `response_format` and fences the document (found by an audit: the
    fenced JSON was streamed and stored as the reply, and the sentiment fell back to neutral)."""
    document = json.dumps({"reply": REPLY, "sentiment": {"score": -0.4, "label": "Negative", "emotion": "annoyed"}})
    fenced = f"```json\n{document}\n```"
    scripted.reply(*[fenced[i : i + 5] for i in range(0, len(fenced), 5)])

    _, events = await stream(alice, chat("Tell me a story", "structured", "scripted", "test-model"))

    assert "".join(data["content"] for _, name, data in events if name == "chunk") == REPLY
    assert sentiment_of(events)["message"] == {"score": -0.4, "label": "Negative", "emotion": "annoyed"}
    user = await user_message(events)
    assert user.sentiment_data["message"]["source"] == "structured"
    assistant = await sync_to_async(Message.objects.get)(pk=user.pk + 1)
    assert assistant.content == REPLY


async def test_structured_reply_that_only_looks_like_a_fence_opening_is_streamed(stream, alice, scripted):
    scripted.reply("``", "`js")  # held back while it could still open a document

    _, events = await stream(alice, chat("hi", "structured", "scripted", "test-model"))

    assert "".join(data["content"] for _, name, data in events if name == "chunk") == "```js"
    user = await user_message(events)
    assert user.sentiment_data["message"]["details"] == {"error": "not_json"}
    assistant = await sync_to_async(Message.objects.get)(pk=user.pk + 1)
    assert (assistant.content, assistant.status) == ("```js", "complete")


# --- nlp_api ----------------------------------------------------------------------------------------


async def test_nlp_api_through_the_cloud_nl_client(stream, alice, cloud_nl):
    cloud_nl.set_result(-0.6, 1.3)

    _, events = await stream(
        alice, chat("The service was slow.", "nlp_api", provider="gemini", model="gemini-2.5-flash")
    )

    assert sentiment_of(events)["message"] == {"score": -0.6, "label": "Negative", "emotion": None}
    stored = (await user_message(events)).sentiment_data["message"]
    assert stored["source"] == "nlp_api"
    assert stored["details"]["magnitude"] == 1.3
    assert cloud_nl.analyze_requests


async def test_nlp_api_not_configured(stream, alice):
    _, events = await stream(alice, chat("Hello", "nlp_api", provider="gemini", model="gemini-2.5-flash"))

    assert sentiment_of(events)["message"] == {"score": 0.0, "label": "Neutral", "emotion": "neutral"}
    stored = (await user_message(events)).sentiment_data["message"]
    assert stored["details"]["error"] == "Google Cloud NLP not configured"


async def test_nlp_api_failure_gives_a_marked_neutral_result(stream, alice, cloud_nl):
    cloud_nl.fail_next("500")

    _, events = await stream(alice, chat("Hello", "nlp_api", provider="gemini", model="gemini-2.5-flash"))

    assert events[-1][1] == "done"
    stored = (await user_message(events)).sentiment_data["message"]
    assert (stored["label"], stored["source"]) == ("Neutral", "default")
    assert stored["details"]["error"]


# --- cumulative ---------------------------------------------------------------------------------------


async def test_cumulative_over_five_turns_follows_the_running_mean(stream, alice):
    texts = [
        "I love this, it is wonderful!",
        "This is awful and I hate it.",
        "The meeting is at 3pm.",
        "Great, thanks a lot, you are amazing!",
        "I'm a bit sad about it.",
    ]
    conversation_id = None
    scores, cumulative = [], []
    for text in texts:
        extra = {"conversation_id": conversation_id} if conversation_id else {}
        _, events = await stream(alice, chat(text, "local", provider="gemini", model="gemini-2.5-flash", **extra))
        conversation_id = events[0][2]["conversation_id"]
        event = sentiment_of(events)
        scores.append(event["message"]["score"])
        cumulative.append(event["cumulative"])

    for count, item in enumerate(cumulative, start=1):
        mean = sum(scores[:count]) / count
        assert item["score"] == pytest.approx(mean, abs=1e-4)
        expected = "Positive" if mean > 0.1 else "Negative" if mean < -0.1 else "Neutral"
        assert item["label"] == expected
        assert item["summary"] == cumulative[0]["summary"]  # the first summary is kept
    conversation = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.sentiment_state["count"] == 5
    assert conversation.sentiment_state["score"] == pytest.approx(sum(scores) / 5, abs=1e-4)
    detail = [
        m.sentiment_data["cumulative"]["score"]
        for m in await sync_to_async(list)(Message.objects.filter(conversation_id=conversation_id, role="user"))
    ]
    assert detail == [c["score"] for c in cumulative]


async def test_concurrent_turns_never_lose_a_cumulative_update(stream, alice):
    _, first = await stream(alice, chat("Hello", "local", provider="gemini", model="gemini-2.5-flash"))
    conversation_id = first[0][2]["conversation_id"]

    await asyncio.gather(
        *(
            stream(
                alice, chat(f"I love it {i}!", "local", "gemini", "gemini-2.5-flash", conversation_id=conversation_id)
            )
            for i in range(4)
        )
    )

    conversation = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.sentiment_state["count"] == 5
