"""Chat turns through the real OpenAI and Gemini SDKs, against the wire-level fakes of llm.testing."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.tests.conftest import open_stream, read_until, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

CONTRACT_MODELS = [
    ("gemini", "gemini-2.5-flash"),
    ("gemini", "gemini-2.5-pro"),
    ("gemini", "gemini-2.5-flash-lite"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-4o-mini"),
]


def chat(message: str, provider: str, model: str, **extra: object) -> dict:
    return {"message": message, "provider": provider, "model": model, "sentiment_method": "local", **extra}


async def assistant_of(conversation_id: str) -> Message:
    return await sync_to_async(Message.objects.filter(conversation_id=conversation_id, role="assistant").latest)("id")


@pytest.mark.parametrize(("provider", "model"), CONTRACT_MODELS)
async def test_every_contract_model_streams_through_its_sdk(stream, alice, fake_llm_providers, provider, model):
    fake_llm_providers.script(text="Bonjour, comment puis-je aider ?", thoughts=["Thinking it over."])

    response, events = await stream(alice, chat("Salut !", provider, model))

    assert response.status_code == 200
    names = [name for _, name, _ in events]
    assert names[0] == "start"
    assert names[-2:] == ["sentiment", "done"]
    assert "chunk" in names
    reply = "".join(data["content"] for _, name, data in events if name == "chunk")
    assert reply == "Bonjour, comment puis-je aider ?"
    assert fake_llm_providers.last.api == provider
    assert fake_llm_providers.last.model == model
    assistant = await assistant_of(events[0][2]["conversation_id"])
    assert (assistant.content, assistant.status) == (reply, "complete")
    assert assistant.model_info["provider"] == provider
    assert assistant.model_info["model"] == model
    assert "served_by" not in assistant.model_info
    assert assistant.completion_tokens is not None


async def test_gemini_thoughts_reach_the_stream_and_the_stored_reply(stream, alice, fake_llm_providers):
    fake_llm_providers.script(text="Hi!", thoughts=["The user ", "greets me."])

    _, events = await stream(alice, chat("Hello", "gemini", "gemini-2.5-flash"))

    thoughts = [data["content"] for _, name, data in events if name == "thought"]
    assert "".join(thoughts) == "The user greets me."
    assistant = await assistant_of(events[0][2]["conversation_id"])
    assert "".join(assistant.model_info["thoughts"]) == "The user greets me."


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o"), ("gemini", "gemini-2.5-flash")])
async def test_the_second_turn_sends_history_on_the_wire(stream, alice, fake_llm_providers, provider, model):
    fake_llm_providers.script(text="Nice to meet you, Ada.")
    _, first = await stream(alice, chat("I am Ada.", provider, model))
    conversation_id = first[0][2]["conversation_id"]

    await stream(alice, chat("Who am I?", provider, model, conversation_id=conversation_id))

    sent = fake_llm_providers.last.body
    if provider == "openai":
        turns = [(m["role"], m["content"]) for m in sent["messages"] if m["role"] != "system"]
        assert sent["messages"][0]["role"] == "system"
        assert "Lia" in sent["messages"][0]["content"]
    else:
        turns = [(c["role"], "".join(p["text"] for p in c["parts"])) for c in sent["contents"]]
        assert "Lia" in sent["systemInstruction"]["parts"][0]["text"]
    assert turns == [
        ("user", "I am Ada."),
        ("assistant" if provider == "openai" else "model", "Nice to meet you, Ada."),
        ("user", "Who am I?"),
    ]


async def test_model_settings_go_out_on_the_wire(stream, alice, fake_llm_providers):
    settings_body = {"temperature": 0.2, "max_tokens": 123, "top_p": 0.9, "frequency_penalty": 0.5}

    await stream(alice, chat("Hi", "openai", "gpt-4o", model_settings=settings_body))

    sent = fake_llm_providers.last.body
    assert sent["temperature"] == 0.2
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 123
    assert sent["top_p"] == 0.9
    assert sent["frequency_penalty"] == 0.5


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o"), ("gemini", "gemini-2.5-flash")])
@pytest.mark.parametrize("breakage", ["cut", "error", "garbage"])
async def test_provider_breaking_mid_stream(stream, alice, fake_llm_providers, provider, model, breakage):
    fake_llm_providers.script(chunks=["one ", "two ", "three ", "four"], then=breakage, after=2)

    response, events = await stream(alice, chat("Hi", provider, model))

    assert response.status_code == 200
    names = [name for _, name, _ in events]
    assert names[-1] == "error"
    assert "done" not in names
    shown = "".join(data["content"] for _, name, data in events if name == "chunk")
    assert shown == "one two "
    assistant = await assistant_of(events[0][2]["conversation_id"])
    assert (assistant.content, assistant.status) == ("one two ", "failed")
    assert "Traceback" not in str(events)
    assert "sk-fake" not in str(events)


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o"), ("gemini", "gemini-2.5-flash")])
@pytest.mark.parametrize("silence", ["before-the-first-token", "mid-reply"])
async def test_a_silent_provider_ends_the_turn_with_an_error_event_not_a_hang(
    stream, alice, fake_llm_providers, settings, provider, model, silence
):
    """RELIABILITY 17: the first-token and idle timeouts become the stream's last event, an
    `error`, and whatever came before it is kept, marked failed."""
    settings.LLM_FIRST_TOKEN_TIMEOUT = settings.LLM_IDLE_TIMEOUT = 1.5
    settings.LLM_MAX_RETRIES = 0
    if silence == "before-the-first-token":
        fake_llm_providers.script(text="Too late", first_delay=20)
    else:
        fake_llm_providers.script(chunks=["one ", "two ", "three"], then="stall", after=2)

    _, events = await stream(alice, chat("Hi", provider, model))

    names = [name for _, name, _ in events if name != ":"]
    assert names[0] == "start"
    assert names[-1] == "error"
    assert events[-1][2]["message"] == "The AI provider took too long to respond. Please try again."
    assistant = await assistant_of(events[0][2]["conversation_id"])
    expected = "" if silence == "before-the-first-token" else "one two "
    assert (assistant.content, assistant.status) == (expected, "failed")


@pytest.mark.parametrize(("status", "phrase"), [(401, "credentials"), (429, "busy"), (500, "unavailable")])
async def test_provider_refusing_the_request(stream, alice, fake_llm_providers, status, phrase, settings):
    settings.LLM_MAX_RETRIES = 0
    fake_llm_providers.fail_next(status, retry_after=1)

    _, events = await stream(alice, chat("Hi", "openai", "gpt-4o"))

    assert [name for _, name, _ in events] == ["start", "error"]
    assert phrase in events[-1][2]["message"]
    user = await sync_to_async(Message.objects.get)(pk=events[0][2]["message_id"])
    assert user.content == "Hi"
    assistant = await sync_to_async(Message.objects.get)(conversation_id=user.conversation_id, role="assistant")
    assert (assistant.content, assistant.status) == ("", "failed")


async def test_unknown_model_is_an_error_event(stream, alice, fake_llm_providers):
    _, events = await stream(alice, chat("Hi", "openai", "gpt-nonexistent-404"))

    assert [name for _, name, _ in events] == ["start", "error"]
    assert "unknown model" in events[-1][2]["message"]


@pytest.mark.parametrize(("provider", "model"), [("openai", "o1-pro"), ("gemini", "tunedModels/anything")])
async def test_production_serves_catalogued_models_only(stream, alice, fake_llm_providers, settings, provider, model):
    """Any model name used to reach the vendor with the operator's key, the priciest one it can
    reach included (found by an audit). In production only the catalogue's are served: another
    is the contract's 200 + error event, the user's message kept, no provider called."""
    settings.LLM_CATALOGUE_ONLY = None  # its default: on when DEBUG is off
    settings.DEBUG = False

    _, refused = await stream(alice, chat("Hi", provider, model))
    _, served = await stream(alice, chat("Hi", "openai", "gpt-4.1-mini"))

    assert [name for _, name, _ in refused] == ["start", "error"]
    assert refused[-1][2] == {"message": "This model is not available here."}
    assert [request.path for request in fake_llm_providers.requests] == ["/v1/chat/completions"]
    assert [name for _, name, _ in served][-1] == "done"
    stored = await sync_to_async(list)(Message.objects.order_by("id").values_list("role", "content", "status"))
    assert stored[:2] == [("user", "Hi", "complete"), ("assistant", "", "failed")]


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o"), ("gemini", "gemini-2.5-flash")])
async def test_disconnect_closes_the_upstream_stream(alice, fake_llm_providers, provider, model):
    fake_llm_providers.script(chunks=20, delay=0.05)
    communicator = await open_stream(alice.token, chat("Hi", provider, model))

    events = await read_until(communicator, 2)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=5)

    await asyncio.to_thread(fake_llm_providers.wait_for_disconnect, 1, 5)
    assistant = await wait_for_status(events[0][2]["message_id"] + 1, "interrupted")
    assert assistant.content.startswith("w1 w2 ")
    assert len(assistant.content.split()) < 20
