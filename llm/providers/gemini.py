"""Gemini over google-genai's async client (streamGenerateContent, alt=sse).

Thought parts (`part.thought`) become ThoughtDelta: the request asks for them with
`include_thoughts`. One `genai.Client` per process: building one costs ~67 ms, and the SDK
keeps an HTTP client per event loop itself. Its own retries are off by default; llm.resilience
retries before the first token, and runs the SDK iterator in a pump task, because `aclose()`
on the SDK's generator leaves the HTTP response open (ECOSYSTEM §2.7).

LLM_CONNECT_TIMEOUT does not reach this SDK: it sends every request with one total timeout
(`HttpOptions.timeout`), which replaces any connect timeout its HTTP session has, and it builds
that session itself. A connection that hangs is given up at the first-token timeout instead
(tested). A session of ours (`HttpOptions.aiohttp_client`) would have to be made in each event
loop, and with it a whole client (~80 ms, on the loop).
"""

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any

import httpx2
from google import genai
from google.genai import errors, types

from llm.exceptions import (
    LLMError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from llm.interface import ChatMessage, ChatOptions, Delta, Finish, TextDelta, ThoughtDelta, Usage
from llm.providers._common import parse_json_object, retry_after_from_google_details, retry_after_from_headers
from llm.resilience import CallPolicy, guarded_call, guarded_stream, pumped

CONTENT_FILTER = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


def finish_reason_of(reason: Any) -> str:
    name = str(getattr(reason, "value", reason)).upper()
    if name == "STOP":
        return "stop"
    if name == "MAX_TOKENS":
        return "length"
    if name in CONTENT_FILTER:
        return "content_filter"
    return name.lower()


# A JSON call's (the sentiment's) thinking, by model: as little as each allows. Gemini counts
# thinking tokens against max_output_tokens, so a short answer (256 tokens) left to a model's own
# thinking (up to 8,192 tokens by default) can come back empty, cut off mid-thought (public
# reports; not reproducible without a key). 2.5 Flash and Flash-Lite can stop thinking (0); 2.5
# Pro can't (its documented minimum is 128, and 0 is a 400). Any other model thinks as it likes,
# with THINKING_ROOM more tokens to do it in.
JSON_THINKING_BUDGETS = {"gemini-2.5-flash": 0, "gemini-2.5-flash-lite": 0, "gemini-2.5-pro": 128}
THINKING_ROOM = 8192


class GeminiProvider:
    def __init__(self, *, name: str, config: Mapping[str, Any], policy: CallPolicy | None = None) -> None:
        self.name = name
        self.policy = policy or CallPolicy.from_settings()
        options = config.get("OPTIONS") or {}
        self._api_key = config.get("API_KEY") or ""
        self._base_url = config.get("BASE_URL") or None
        self._api_version = options.get("API_VERSION") or None
        self.include_thoughts = bool(options.get("INCLUDE_THOUGHTS", True))
        self._client_instance: genai.Client | None = None

    def preload(self) -> None:
        self._client()

    def _client(self) -> genai.Client:
        if self._client_instance is None:
            self._client_instance = genai.Client(
                vertexai=False,
                api_key=self._api_key,
                http_options=types.HttpOptions(
                    base_url=self._base_url,
                    api_version=self._api_version,
                    # Milliseconds. A backstop only: llm.resilience enforces the real timeouts.
                    timeout=int(self.policy.total_timeout * 1000),
                    # One attempt: llm.resilience retries. Without retry options the SDK's aiohttp
                    # transport retries a failed connection itself, once, after 1-10 s.
                    retry_options=types.HttpRetryOptions(attempts=1),
                ),
            )
        return self._client_instance

    def _config(self, options: ChatOptions, *, thoughts: bool) -> types.GenerateContentConfig:
        config: dict[str, Any] = {
            "system_instruction": options.system_prompt or None,
            "temperature": options.temperature,
            "max_output_tokens": options.max_tokens,
            "top_p": options.top_p,
            # No tools are declared; this also silences the SDK's per-call "AFC is enabled" log.
            "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True),
        }
        # Gemini 2.5 rejects penalties ("not enabled for this model") even at 0, which is what
        # the web client sends; pass them only when they would change something.
        if options.frequency_penalty:
            config["frequency_penalty"] = options.frequency_penalty
        if options.presence_penalty:
            config["presence_penalty"] = options.presence_penalty
        if thoughts and self.include_thoughts:
            config["thinking_config"] = types.ThinkingConfig(include_thoughts=True)
        if options.json_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = options.json_schema
        return types.GenerateContentConfig(**config)

    @staticmethod
    def _contents(messages: Sequence[ChatMessage]) -> list[types.Content]:
        return [
            types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.content)])
            for m in messages
        ]

    def stream(self, messages: Sequence[ChatMessage], options: ChatOptions) -> AsyncGenerator[Delta, None]:
        return guarded_stream(
            lambda: self._deltas(messages, options),
            policy=self.policy,
            classify=self.classify,
            provider=self.name,
            model=options.model,
        )

    async def _deltas(self, messages: Sequence[ChatMessage], options: ChatOptions) -> AsyncIterator[Delta]:
        finish_reason: str | None = None
        usage: Usage | None = None
        chunks = await self._client().aio.models.generate_content_stream(
            model=options.model, contents=self._contents(messages), config=self._config(options, thoughts=True)
        )
        # Read in a task of its own that closing cancels: that closes the response (llm.resilience).
        async with contextlib.aclosing(pumped(chunks)) as pumped_chunks:
            async for chunk in pumped_chunks:
                if chunk.usage_metadata is not None:
                    usage = _usage(chunk.usage_metadata)
                candidate = chunk.candidates[0] if chunk.candidates else None
                if candidate is not None and candidate.content is not None:
                    for part in candidate.content.parts or []:
                        if part.text:
                            yield ThoughtDelta(part.text) if part.thought else TextDelta(part.text)
                if candidate is not None and candidate.finish_reason is not None:
                    finish_reason = finish_reason_of(candidate.finish_reason)
                if chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason is not None:
                    finish_reason = "content_filter"  # a blocked prompt: no candidate content at all
        if finish_reason is None:
            raise ProviderUnavailable(f"{self.name}: stream ended without a finish reason", provider=self.name)
        yield Finish(finish_reason, usage)

    async def complete_json(
        self, messages: Sequence[ChatMessage], options: ChatOptions, schema: dict[str, Any], *, name: str = "result"
    ) -> dict[str, Any]:
        config = self._config(options, thoughts=False)
        config.response_mime_type = "application/json"
        config.response_json_schema = schema
        budget = JSON_THINKING_BUDGETS.get(options.model.removeprefix("models/"))
        if budget is not None:
            config.thinking_config = types.ThinkingConfig(thinking_budget=budget)
        if config.max_output_tokens is not None:
            config.max_output_tokens += THINKING_ROOM if budget is None else budget

        async def call() -> dict[str, Any]:
            response = await self._client().aio.models.generate_content(
                model=options.model, contents=self._contents(messages), config=config
            )
            return parse_json_object(response.text, provider=self.name)

        return await guarded_call(
            call, policy=self.policy, classify=self.classify, provider=self.name, model=options.model
        )

    def classify(self, exc: BaseException) -> LLMError:
        """The Lia error for an SDK or transport exception (the SDK doesn't wrap the latter)."""
        name = self.name
        if isinstance(exc, errors.APIError):
            status = exc.code or 0
            detail = f"{name}: HTTP {status} {exc.status or ''}".rstrip()
            if status in (401, 403) or (status == 400 and _api_key_invalid(exc)):
                return ProviderAuthError(detail, provider=name)
            if status == 429:
                headers = getattr(getattr(exc, "response", None), "headers", None)
                retry_after = retry_after_from_google_details(exc.details)
                if retry_after is None:
                    retry_after = retry_after_from_headers(headers)
                return ProviderRateLimited(detail, provider=name, retry_after=retry_after)
            if status == 504:
                return ProviderTimeout(detail, provider=name)
            if status == 408 or status >= 500:
                return ProviderUnavailable(detail, provider=name)
            return ProviderBadRequest(detail, provider=name)
        if isinstance(exc, httpx2.TimeoutException | TimeoutError):
            return ProviderTimeout(f"{name}: timed out ({type(exc).__name__})", provider=name)
        if type(exc) is ValueError:  # the SDK refusing its arguments (a model name with `..`), nothing sent
            return ProviderBadRequest(f"{name}: {exc}", provider=name)
        # httpx2 (or aiohttp) transport errors: refused connections, a body cut mid-stream, …
        return ProviderUnavailable(f"{name}: {type(exc).__name__}", provider=name)


def _usage(metadata: types.GenerateContentResponseUsageMetadata) -> Usage:
    candidates, thoughts = metadata.candidates_token_count, metadata.thoughts_token_count
    completion = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    return Usage(metadata.prompt_token_count, completion)


def _api_key_invalid(exc: errors.APIError) -> bool:
    """Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID."""
    return "API_KEY_INVALID" in str(exc.details) or "API key not valid" in (exc.message or "")
