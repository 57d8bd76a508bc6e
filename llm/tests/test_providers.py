"""The OpenAI, Gemini and OpenAI-compatible adapters, through the real SDKs, against the wire fakes."""

import asyncio
import json
import logging
import socket
from datetime import timedelta
from email.utils import format_datetime

import jsonschema
import pytest
from django.utils import timezone

from llm import (
    ChatMessage,
    ChatOptions,
    Finish,
    LLMError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    TextDelta,
    ThoughtDelta,
    preload_providers,
    resolve_provider,
)
from llm.providers._common import retry_after_from_headers

PROVIDERS = ["openai", "gemini", "compat"]
MODEL = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash", "compat": "fake-small"}
HELLO = [ChatMessage("user", "Hello!")]
SCHEMA = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
    },
    "required": ["reply", "sentiment", "score"],
    "additionalProperties": False,
}


async def collect(name: str, options: ChatOptions | None = None, messages=HELLO) -> list:
    provider = resolve_provider(name, MODEL[name]).provider
    return [delta async for delta in provider.stream(messages, options or ChatOptions(model=MODEL[name]))]


async def drain(stream, into: list) -> None:
    async for delta in stream:
        into.append(delta)


def text_of(deltas) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


@pytest.fixture
def fake(fake_llm_providers):
    return fake_llm_providers


@pytest.mark.parametrize("name", PROVIDERS)
async def test_reply_streams_with_thoughts_usage_and_finish_reason(fake, name):
    fake.script(text="Hi! How can I help today?", thoughts=["The user greets me. ", "Be warm."], prompt_tokens=12)

    deltas = await collect(name)

    assert [d.text for d in deltas if isinstance(d, ThoughtDelta)] == ["The user greets me. ", "Be warm."]
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["Hi!", " How", " can", " I", " help", " today?"]
    assert isinstance(deltas[-1], Finish)
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage.prompt_tokens == 12
    assert deltas[-1].usage.completion_tokens >= 6
    assert sum(isinstance(d, Finish) for d in deltas) == 1


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(("sent", "normalised"), [("length", "length"), ("content_filter", "content_filter")])
async def test_finish_reasons_are_normalised(fake, name, sent, normalised):
    fake.script(text="Cut short", finish_reason=sent)
    deltas = await collect(name)
    assert deltas[-1].finish_reason == normalised


async def test_openai_request_carries_key_conversation_and_settings(fake):
    options = ChatOptions(
        model="gpt-4.1",
        temperature=0.2,
        max_tokens=300,
        top_p=0.9,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        system_prompt="You are Lia.",
    )
    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello!"), ChatMessage("user", "How are you?")]

    await collect("openai", options, history)

    request = fake.last
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-fake"
    assert request.body["model"] == "gpt-4.1"
    assert request.body["messages"] == [
        {"role": "system", "content": "You are Lia."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["max_completion_tokens"] == 300
    assert (request.body["temperature"], request.body["top_p"]) == (0.2, 0.9)
    assert (request.body["frequency_penalty"], request.body["presence_penalty"]) == (0.5, -0.5)


async def test_gemini_request_carries_key_conversation_and_settings(fake):
    options = ChatOptions(
        model="gemini-2.5-pro",
        temperature=0.3,
        max_tokens=500,
        top_p=1.0,
        frequency_penalty=0.0,
        presence_penalty=0.0,
        system_prompt="You are Lia.",
    )
    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello!"), ChatMessage("user", "How are you?")]

    await collect("gemini", options, history)

    request = fake.last
    assert request.path == "/v1/models/gemini-2.5-pro:streamGenerateContent"
    assert request.query == {"alt": "sse"}
    assert request.headers["x-goog-api-key"] == "g-fake"
    assert request.body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "How are you?"}]},
    ]
    assert request.body["systemInstruction"]["parts"] == [{"text": "You are Lia."}]
    config = request.body["generationConfig"]
    assert (config["temperature"], config["maxOutputTokens"], config["topP"]) == (0.3, 500, 1.0)
    # Gemini 2.5 rejects penalties; zero ones (what the web client sends) are left out.
    assert "frequencyPenalty" not in config
    assert "presencePenalty" not in config
    assert config["thinkingConfig"] == {"include_thoughts": True}


async def test_compatible_provider_uses_its_own_base_url_and_max_tokens(fake):
    await collect("compat", ChatOptions(model="fake-small", max_tokens=64))

    request = fake.last
    assert request.path == "/compat/v1/chat/completions"
    assert request.body["model"] == "fake-small"
    assert request.body["max_tokens"] == 64
    assert "max_completion_tokens" not in request.body


@pytest.mark.parametrize("name", PROVIDERS)
async def test_json_call_returns_a_schema_valid_object(fake, name):
    fake.script(text="Glad to help!")
    provider = resolve_provider(name, MODEL[name]).provider

    result = await provider.complete_json(HELLO, ChatOptions(model=MODEL[name]), SCHEMA, name="reply_with_sentiment")

    jsonschema.validate(result, SCHEMA)
    assert result["reply"] == "Glad to help!"
    body = fake.last.body
    if name == "gemini":
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        assert body["generationConfig"]["responseJsonSchema"] == SCHEMA
    else:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "reply_with_sentiment", "schema": SCHEMA, "strict": True},
        }


@pytest.mark.parametrize(
    ("model", "thinking", "max_output_tokens"),
    [
        ("gemini-2.5-flash", {"thinking_budget": 0}, 256),
        ("gemini-2.5-flash-lite", {"thinking_budget": 0}, 256),
        ("gemini-2.5-pro", {"thinking_budget": 128}, 256 + 128),  # it can't stop thinking
        ("gemini-3-pro-preview", None, 256 + 8192),  # thinks as it likes, with room for it
    ],
)
async def test_a_gemini_json_call_leaves_its_answer_room_after_thinking(fake, model, thinking, max_output_tokens):
    """Gemini counts thinking tokens against max_output_tokens: the sentiment's 256-token answer,
    left to a model's own thinking, can come back empty (public reports)."""
    fake.script(json={"score": 0.5, "label": "Positive", "emotion": "happy"})
    provider = resolve_provider("gemini", model).provider

    await provider.complete_json(HELLO, ChatOptions(model=model, max_tokens=256), SCHEMA)

    config = fake.last.body["generationConfig"]
    assert config.get("thinkingConfig") == thinking
    assert config["maxOutputTokens"] == max_output_tokens


@pytest.mark.parametrize("name", PROVIDERS)
async def test_json_schema_option_streams_a_json_document(fake, name):
    fake.script(text="Streaming JSON works.")

    deltas = await collect(name, ChatOptions(model=MODEL[name], json_schema=SCHEMA))

    assert sum(isinstance(d, TextDelta) for d in deltas) > 3  # arrives in pieces
    document = json.loads(text_of(deltas))
    jsonschema.validate(document, SCHEMA)
    assert document["reply"] == "Streaming JSON works."


async def test_json_call_with_an_unusable_answer_is_an_llm_error(fake):
    fake.script(json=["not", "an", "object"])
    provider = resolve_provider("openai", "gpt-4o").provider
    with pytest.raises(ProviderUnavailable):
        await provider.complete_json(HELLO, ChatOptions(model="gpt-4o"), SCHEMA)


# --- failures before the first token ------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ProviderAuthError), (403, ProviderAuthError), (404, ProviderBadRequest)],
)
async def test_refusals_become_lia_errors_without_retrying(fake, name, status, error):
    fake.fail_next(status, times=5)

    with pytest.raises(error) as caught:
        await collect(name)

    assert len(fake.requests) == 1
    assert "fake" not in str(caught.value)  # no key, no vendor message text
    assert caught.value.public_message


@pytest.mark.parametrize("model", ["../../v1beta/models/gemini-2.5-pro", "gemini-2.5-flash:generateContent?x="])
async def test_a_model_name_gemini_refuses_to_send_is_a_bad_request_at_once(fake, model):
    """The SDK refuses such a name before sending anything (a ValueError): a bad request, not a
    provider that is down, so it is not retried (found by an audit: two retries, then "The AI
    provider is unavailable right now")."""
    provider = resolve_provider("gemini", model).provider
    with pytest.raises(ProviderBadRequest):
        await drain(provider.stream(HELLO, ChatOptions(model=model)), [])

    assert fake.requests == []


@pytest.mark.parametrize("name", ["openai", "gemini"])
async def test_a_rejected_key_is_an_auth_error(fake, name):
    fake.valid_keys = {"the-right-key"}
    with pytest.raises(ProviderAuthError):
        await collect(name)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_rate_limit_reports_the_vendors_retry_after(fake, name, settings):
    settings.LLM_MAX_RETRY_WAIT = 2.0
    fake.fail_next(429, retry_after=120, times=5)

    with pytest.raises(ProviderRateLimited) as caught:
        await collect(name)

    assert caught.value.retry_after == 120
    assert len(fake.requests) == 1  # a 2-minute wait is not worth holding the user for


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "7"}, 0.25),  # OpenAI's finer header first
        ({"retry-after-ms": "soon", "retry-after": "7"}, 7.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date gone by
        ({"retry-after": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_is_read_in_each_form_the_http_header_takes(headers, seconds):
    assert retry_after_from_headers(headers) == seconds


def test_retry_after_as_an_http_date_is_the_seconds_until_it():
    in_30_seconds = format_datetime(timezone.now() + timedelta(seconds=30), usegmt=True)

    assert 28 <= retry_after_from_headers({"retry-after": in_30_seconds}) <= 30


@pytest.mark.parametrize("name", PROVIDERS)
async def test_transient_failures_are_retried_before_the_first_token(fake, name):
    fake.fail_next(429, retry_after=0)
    fake.fail_next(503)
    fake.script(text="Third time lucky")

    deltas = await collect(name)

    assert text_of(deltas) == "Third time lucky"
    assert await asyncio.to_thread(fake.wait_settled)
    assert [r.outcome for r in fake.requests] == ["failed", "failed", "complete"]


@pytest.mark.parametrize("name", PROVIDERS)
async def test_retries_are_bounded(fake, name, settings):
    settings.LLM_MAX_RETRIES = 2
    fake.fail_next(500, times=10)

    with pytest.raises(ProviderUnavailable):
        await collect(name)

    assert len(fake.requests) == 3


async def test_json_call_retries_too(fake):
    fake.fail_next(500)
    provider = resolve_provider("gemini", "gemini-2.5-flash").provider
    result = await provider.complete_json(HELLO, ChatOptions(model="gemini-2.5-flash"), SCHEMA)
    jsonschema.validate(result, SCHEMA)
    assert len(fake.requests) == 2


@pytest.mark.parametrize("name", ["openai", "gemini"])
async def test_unreachable_server_is_unavailable(settings, name):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = {"openai": f"http://127.0.0.1:{port}/v1", "gemini": f"http://127.0.0.1:{port}"}[name]
    config = {**settings.LLM_PROVIDERS[name], "API_KEY": "k", "BASE_URL": base}
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, name: config}

    with pytest.raises(ProviderUnavailable) as caught:
        await collect(name)

    assert type(caught.value) is ProviderUnavailable  # not a ProviderTimeout: nothing timed out


@pytest.mark.parametrize("name", ["openai", "gemini"])
async def test_a_connection_that_hangs_is_given_up(settings, name):
    """A provider host that never completes the TCP handshake (its accept queue full, a firewall
    that drops SYNs) ends in a ProviderTimeout, not a hang: after LLM_CONNECT_TIMEOUT through
    OpenAI's SDK; after LLM_FIRST_TOKEN_TIMEOUT through Gemini's, which sends every request with
    one total timeout that replaces any connect timeout of its HTTP session (llm.providers.gemini)."""
    settings.LLM_CONNECT_TIMEOUT = 0.5
    settings.LLM_FIRST_TOKEN_TIMEOUT = 2.5
    settings.LLM_MAX_RETRIES = 0
    with socket.socket() as server, socket.create_connection(server_address := _full_listener(server)):
        host, port = server_address
        base = {"openai": f"http://{host}:{port}/v1", "gemini": f"http://{host}:{port}"}[name]
        config = {**settings.LLM_PROVIDERS[name], "API_KEY": "k", "BASE_URL": base}
        settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, name: config}
        started = asyncio.get_running_loop().time()

        with pytest.raises(ProviderTimeout):
            await collect(name)

        elapsed = asyncio.get_running_loop().time() - started
    if name == "openai":
        assert elapsed < 2.0  # the connect timeout, well before the first-token one
    else:
        assert 2.0 < elapsed < 6.0


def _full_listener(server: socket.socket) -> tuple[str, int]:
    """Listen with a backlog of 0: once one connection waits unaccepted (the caller's), the
    kernel drops further SYNs, so a connect hangs."""
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    return server.getsockname()


# --- failures after the first token -------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("then", ["cut", "error", "end"])
async def test_a_stream_that_breaks_midway_raises_after_the_text_already_sent(fake, name, then):
    fake.script(text="One two three four", then=then, after=2)
    received: list = []
    provider = resolve_provider(name, MODEL[name]).provider

    with pytest.raises(ProviderUnavailable) as caught:
        await drain(provider.stream(HELLO, ChatOptions(model=MODEL[name])), received)

    assert text_of(received) == "One two"
    assert not any(isinstance(d, Finish) for d in received)
    assert isinstance(caught.value, LLMError)
    assert len(fake.requests) == 1  # never retried once the user has seen text


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_stalled_stream_trips_the_idle_timeout_and_is_closed(fake, name, settings):
    settings.LLM_IDLE_TIMEOUT = 0.3
    fake.script(text="Hello there", then="stall", after=1)
    received: list = []
    provider = resolve_provider(name, MODEL[name]).provider

    with pytest.raises(ProviderTimeout):
        await drain(provider.stream(HELLO, ChatOptions(model=MODEL[name])), received)

    assert text_of(received) == "Hello"
    assert await asyncio.to_thread(fake.wait_for_disconnect, 1, 10)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_silent_server_trips_the_first_token_timeout(fake, name, settings):
    # Long enough for the request to reach the fake on a busy machine (the timeout also covers
    # building the client and connecting), far shorter than the fake's 20 s silence.
    settings.LLM_FIRST_TOKEN_TIMEOUT = 1.5
    fake.script(text="Too late", first_delay=20)

    with pytest.raises(ProviderTimeout):
        await collect(name)

    assert len(fake.requests) == 1
    assert await asyncio.to_thread(fake.wait_for_disconnect, 1, 10)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_the_total_timeout_bounds_a_slow_but_steady_stream(fake, name, settings):
    settings.LLM_TOTAL_TIMEOUT = 0.5
    fake.script(chunks=200, delay=0.02)

    with pytest.raises(ProviderTimeout):
        await collect(name)


# --- closing the stream closes the provider's HTTP stream ---------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_closing_the_stream_early_closes_the_upstream_response(fake, name):
    fake.script(chunks=200, delay=0.02)
    stream = resolve_provider(name, MODEL[name]).provider.stream(HELLO, ChatOptions(model=MODEL[name]))

    first = await anext(stream)
    await stream.aclose()

    assert isinstance(first, TextDelta)
    assert await asyncio.to_thread(fake.wait_for_disconnect, 1, 10)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_cancelling_a_consumer_parked_outside_the_stream_closes_it(fake, name):
    """The chat view's case: the client leaves while the generator awaits something else."""
    fake.script(chunks=200, delay=0.02)
    got_one = asyncio.Event()

    async def consume() -> None:
        stream = resolve_provider(name, MODEL[name]).provider.stream(HELLO, ChatOptions(model=MODEL[name]))
        try:
            async for _ in stream:
                got_one.set()
                await asyncio.sleep(30)  # e.g. a slow send or a database write
        finally:
            await stream.aclose()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(fake.wait_for_disconnect, 1, 10)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_one_client_per_provider_reuses_the_connection(fake, name):
    await collect(name)
    await collect(name)
    first, second = fake.requests
    assert first.peer_port == second.peer_port


# --- the models Lia must serve (CONTRACT §9.8) --------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("gemini", "gemini-2.5-flash"),
        ("gemini", "gemini-2.5-pro"),
        ("gemini", "gemini-2.5-flash-lite"),
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1"),
        ("openai", "gpt-4.1-mini"),
    ],
)
async def test_every_model_of_the_web_client_streams_through_its_adapter(fake, provider, model):
    fake.script(text="Model check passed.")
    resolved = resolve_provider(provider, model)
    deltas = [d async for d in resolved.provider.stream(HELLO, ChatOptions(model=model))]

    assert resolved.served_by == provider
    assert resolved.offline is False
    assert text_of(deltas) == "Model check passed."
    assert fake.last.model == model


# --- preloading at start (lia.asgi.warm_up) ------------------------------------------------


def test_preloading_builds_every_provider_that_can_be_called(fake, settings):
    settings.DEBUG = False
    settings.LLM_OFFLINE_FALLBACK = False
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, "openai": {**settings.LLM_PROVIDERS["openai"], "API_KEY": ""}}

    assert preload_providers() == ["gemini", "compat", "offline"]  # openai needs a key it lacks
    assert resolve_provider("compat", MODEL["compat"]).provider._spare is not None  # its client, built


def test_a_provider_that_fails_to_preload_is_logged_and_the_others_still_are(fake, settings, caplog):
    settings.LLM_PROVIDERS = {"broken": {"BACKEND": "llm.providers.nope.Provider"}, **settings.LLM_PROVIDERS}
    caplog.set_level(logging.WARNING, logger="llm")

    assert preload_providers() == ["gemini", "openai", "compat", "offline"]
    failed = [r.msg for r in caplog.records if r.name == "llm" and r.msg["event"] == "llm.preload_failed"]
    assert [(f["provider"], f["error"]) for f in failed] == [("broken", "ModuleNotFoundError")]


@pytest.mark.parametrize("name", ["openai", "compat"])
def test_a_preloaded_openai_client_serves_the_first_event_loop_and_only_it(fake, name):
    provider = resolve_provider(name, MODEL[name]).provider
    provider.preload()
    preloaded = provider._spare

    async def turn():
        assert text_of(await collect(name)) == "Hello from the fake model."
        return await provider._client()

    first, second = asyncio.run(turn()), asyncio.run(turn())

    assert first is preloaded
    assert second is not preloaded  # a connection pool can't cross loops: the second builds its own


def test_a_client_is_closed_when_its_event_loop_shuts_down(fake):
    provider = resolve_provider("openai", MODEL["openai"]).provider

    async def turn():
        assert text_of(await collect("openai")) == "Hello from the fake model."
        client = await provider._client()
        assert not client.is_closed()
        return client

    client = asyncio.run(turn())

    # asyncio.run finalised the closer parked in its loop: the aiohttp session is closed there,
    # not garbage-collected open ("Unclosed client session"), and the loop is forgotten.
    assert client.is_closed()
    assert client._client._transport.client.closed
    assert provider._clients == {}


async def test_preloading_inside_a_running_loop_serves_that_loop(fake):
    # uvicorn imports the application inside its running loop.
    provider = resolve_provider("openai", MODEL["openai"]).provider
    provider.preload()
    preloaded = provider._spare

    assert text_of(await collect("openai")) == "Hello from the fake model."
    assert await provider._client() is preloaded


async def test_a_preloaded_gemini_client_is_the_one_that_streams(fake):
    provider = resolve_provider("gemini", MODEL["gemini"]).provider
    provider.preload()
    preloaded = provider._client()

    assert text_of(await collect("gemini")) == "Hello from the fake model."
    assert provider._client() is preloaded
