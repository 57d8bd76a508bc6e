"""OpenAI chat completions over the official async SDK, and any OpenAI-compatible server.

Streaming asks for usage (`stream_options.include_usage`); `async with stream` closes the HTTP
response on exit or cancellation. Thoughts come from `reasoning_content` / `reasoning` delta
fields, which compatible servers (vLLM, Ollama, DeepSeek) send; OpenAI's own chat completions
don't expose reasoning. The SDK's retries are off (max_retries=0): llm.resilience retries,
before the first token only, so waits don't stack.

Requests go through the SDK client's `post` (its auth, headers, timeouts, error mapping, SSE
decoding, error frames and response closing) with `cast_to=object`, so every chunk arrives as
the plain JSON dict: building a pydantic `ChatCompletionChunk` per chunk, and transforming the
params through the SDK's TypedDicts per request, was the largest CPU cost of a chat stream
(bench/, README "Performance"). The params are already the wire's JSON.

The SDK's HTTP layer is aiohttp (`openai.DefaultAioHttpClient`, the SDK's `aiohttp` extra)
rather than its default httpx2 + httpcore2 + h11: its C parser reads a streamed reply with about a
third less CPU per chunk and reaches the first chunk ~0.3 ms sooner (`python -m bench.adapter_cpu`,
README "Performance" change 21). What differs on it: the connect timeout covers the TCP (and TLS)
connection but not the DNS lookup, there is no write timeout (llm.resilience's first-token and
total timeouts bound both), HTTP proxies from the environment work but SOCKS ones don't, and the
SDK's transport reports a refused connection as a connect timeout (`classify` looks behind it).
"""

import asyncio
import functools
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import anyio
import openai

from llm.exceptions import (
    LLMError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from llm.interface import ChatMessage, ChatOptions, Delta, Finish, TextDelta, ThoughtDelta, Usage
from llm.providers._common import parse_json_object, retry_after_from_headers
from llm.resilience import CallPolicy, guarded_call, guarded_stream

REASONING_FIELDS = ("reasoning_content", "reasoning")
CHAT_PATH = "/chat/completions"
# What `chat.completions.create` sends besides the body: bearer auth.
REQUEST_OPTIONS: dict[str, Any] = {"security": {"bearer_auth": True}}


@functools.cache
def _import_anyio_backend() -> None:
    """The SDK's first stream imports anyio's asyncio backend (~15 ms, for its response
    clean-up): import it now, once per process, in a thread of its own (the caller's may have a
    loop running, or one set as current that anyio.run would unset)."""
    warmer = threading.Thread(target=anyio.run, args=(anyio.sleep, 0), name="lia-preload")
    warmer.start()
    warmer.join()


class OpenAIProvider:
    # OpenAI's current name; its newer models reject `max_tokens`.
    max_tokens_param = "max_completion_tokens"

    def __init__(self, *, name: str, config: Mapping[str, Any], policy: CallPolicy | None = None) -> None:
        self.name = name
        self.policy = policy or CallPolicy.from_settings()
        self._api_key = config.get("API_KEY") or ""
        self._base_url = config.get("BASE_URL") or None
        # One client per event loop (a connection pool can't cross loops), with what closes and
        # forgets it when the loop shuts down (`_closed_with_the_loop`). A server has one loop, so
        # this is one client per process there; tests and commands get their own.
        self._clients: dict[asyncio.AbstractEventLoop, tuple[openai.AsyncOpenAI, AsyncGenerator[None, None]]] = {}
        # A client built before any loop runs (preload), for the first loop that asks.
        self._spare: openai.AsyncOpenAI | None = None
        self._spare_lock = threading.Lock()

    def preload(self) -> None:
        """Building a client imports the SDK's HTTP stack and loads the system's CA certificates
        (~50 ms, on the event loop if it happens there); the first loop to ask takes this one."""
        if self._spare is None:
            self._spare = self._new_client()
        _import_anyio_backend()

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            # Compatible servers often need no key, but the SDK insists on one.
            api_key=self._api_key or "not-needed",
            base_url=self._base_url,
            max_retries=0,
            timeout=openai.Timeout(self.policy.total_timeout, connect=self.policy.connect_timeout),
            http_client=openai.DefaultAioHttpClient(),
        )

    async def _client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            with self._spare_lock:  # two loops in two threads (commands, tests) must not share it
                client, self._spare = self._spare or self._new_client(), None
            closer = self._closed_with_the_loop(loop, client)
            self._clients[loop] = entry = (client, closer)
            await anext(closer)
        return entry[0]

    async def _closed_with_the_loop(
        self, loop: asyncio.AbstractEventLoop, client: openai.AsyncOpenAI
    ) -> AsyncGenerator[None, None]:
        """Parked at its `yield` for as long as the client's event loop runs. Whatever shuts a
        loop down properly (asyncio.run, so uvicorn and the management commands; asgiref's
        async_to_sync; pytest-asyncio) finalises the async generators still parked in it first
        (`loop.shutdown_asyncgens()`), and this one then forgets the client and closes it, in
        its own loop: an aiohttp session garbage-collected open is an error line ("Unclosed
        client session"), and the entry would keep the loop alive (the session holds it).
        Twisted's reactor (daphne) never finalises them: its one client lives as long as the
        process."""
        try:
            yield
        finally:
            self._clients.pop(loop, None)
            await client.close()

    def _params(self, messages: Sequence[ChatMessage], options: ChatOptions) -> dict[str, Any]:
        chat = [{"role": "system", "content": options.system_prompt}] if options.system_prompt else []
        chat += [{"role": m.role, "content": m.content} for m in messages]
        params: dict[str, Any] = {
            "model": options.model,
            "messages": chat,
            "temperature": options.temperature,
            self.max_tokens_param: options.max_tokens,
        }
        for key in ("top_p", "frequency_penalty", "presence_penalty"):
            if (value := getattr(options, key)) is not None:
                params[key] = value
        if options.json_schema is not None:
            params["response_format"] = response_format(options.json_schema, "reply")
        return params

    def stream(self, messages: Sequence[ChatMessage], options: ChatOptions) -> AsyncGenerator[Delta, None]:
        params = self._params(messages, options)
        params.update(stream=True, stream_options={"include_usage": True})
        return guarded_stream(
            lambda: self._deltas(params),
            policy=self.policy,
            classify=self.classify,
            provider=self.name,
            model=options.model,
        )

    async def _deltas(self, params: dict[str, Any]) -> AsyncIterator[Delta]:
        finish_reason: str | None = None
        usage: Usage | None = None
        stream = await (await self._client()).post(
            CHAT_PATH,
            body=params,
            cast_to=object,
            options=REQUEST_OPTIONS,  # type: ignore[arg-type]
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        async with stream:
            async for chunk in stream:
                if not isinstance(chunk, dict):
                    continue
                if isinstance(chunk_usage := chunk.get("usage"), dict):
                    usage = Usage(chunk_usage.get("prompt_tokens"), chunk_usage.get("completion_tokens"))
                for choice in (chunk.get("choices") or [])[:1]:
                    delta = choice.get("delta") or {}
                    for key in REASONING_FIELDS:
                        if isinstance(delta.get(key), str) and delta[key]:
                            yield ThoughtDelta(delta[key])
                            break
                    if isinstance(content := delta.get("content"), str) and content:
                        yield TextDelta(content)
                    if isinstance(refusal := delta.get("refusal"), str) and refusal:
                        yield TextDelta(refusal)
                    if choice.get("finish_reason"):
                        finish_reason = str(choice["finish_reason"])
        if finish_reason is None:
            # The SDK accepts a body that just stops (no finish reason, no [DONE]).
            raise ProviderUnavailable(f"{self.name}: stream ended without a finish reason", provider=self.name)
        yield Finish(finish_reason.lower(), usage)

    async def complete_json(
        self, messages: Sequence[ChatMessage], options: ChatOptions, schema: dict[str, Any], *, name: str = "result"
    ) -> dict[str, Any]:
        params = self._params(messages, replace(options, json_schema=None))
        params["response_format"] = response_format(schema, name)

        async def call() -> dict[str, Any]:
            completion = await (await self._client()).post(
                CHAT_PATH,
                body=params,
                cast_to=object,
                options=REQUEST_OPTIONS,  # type: ignore[arg-type]
            )
            choices = completion.get("choices") if isinstance(completion, dict) else None
            message = (choices[0].get("message") or {}) if choices and isinstance(choices[0], dict) else {}
            return parse_json_object(message.get("content"), provider=self.name)

        return await guarded_call(
            call, policy=self.policy, classify=self.classify, provider=self.name, model=options.model
        )

    def classify(self, exc: BaseException) -> LLMError:
        """The Lia error for an SDK exception; the detail never carries the vendor's message."""
        name = self.name
        if isinstance(exc, openai.APIStatusError):
            status, code = exc.status_code, getattr(exc, "code", None)
            detail = f"{name}: HTTP {status}" + (f" {code}" if code else "")
            if status in (401, 403):
                return ProviderAuthError(detail, provider=name)
            if status == 429:
                retry_after = retry_after_from_headers(exc.response.headers)
                # An exhausted quota is a 429 too, but waiting won't help.
                return ProviderRateLimited(
                    detail, provider=name, retry_after=retry_after, retryable=code != "insufficient_quota"
                )
            if status == 504:
                return ProviderTimeout(detail, provider=name)
            if status in (408, 409) or status >= 500:
                return ProviderUnavailable(detail, provider=name)
            return ProviderBadRequest(detail, provider=name)
        if isinstance(exc, openai.APITimeoutError):
            if (refused := _aiohttp_connection_error(exc)) is not None:
                return ProviderUnavailable(f"{name}: connection failed ({type(refused).__name__})", provider=name)
            return ProviderTimeout(f"{name}: timed out", provider=name)
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "unknown"
            return ProviderUnavailable(f"{name}: connection failed ({cause})", provider=name)
        if isinstance(exc, openai.APIError):
            return ProviderUnavailable(f"{name}: error frame in the stream", provider=name)
        return ProviderUnavailable(f"{name}: unexpected {type(exc).__name__}", provider=name)


def _aiohttp_connection_error(exc: openai.APITimeoutError) -> BaseException | None:
    """The aiohttp connection error behind a "timeout" that wasn't one. The SDK's aiohttp
    transport maps every aiohttp connection error to a connect timeout (its AIOHTTP_EXC_MAP), a
    refused connection included; aiohttp's own timeouts are TimeoutErrors."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientError):
            timed_out = isinstance(cause, TimeoutError)
            return cause if isinstance(cause, aiohttp.ClientConnectionError) and not timed_out else None
        cause = cause.__cause__
    return None


class OpenAICompatibleProvider(OpenAIProvider):
    """Ollama, vLLM, LM Studio, llama.cpp, …: the same wire, the older `max_tokens` name."""

    max_tokens_param = "max_tokens"


def response_format(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "result",
            "schema": schema,
            # Strict mode guarantees the schema but accepts only closed objects whose properties
            # are all required; ask for it only when the schema qualifies.
            "strict": is_strict_schema(schema),
        },
    }


def is_strict_schema(schema: Any) -> bool:
    if isinstance(schema, list):
        return all(is_strict_schema(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if "properties" in schema:
        closed = schema.get("additionalProperties") is False
        if not closed or set(schema.get("required") or []) != set(schema["properties"]):
            return False
    return all(is_strict_schema(value) for key, value in schema.items() if isinstance(value, dict | list))
