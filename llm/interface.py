"""The one interface every provider implements, and the values that cross it.

A provider streams a chat as deltas: text, thoughts (model reasoning, where the vendor exposes
it) and exactly one final `Finish` with the normalised finish reason and token usage. Nothing
vendor-specific crosses this boundary: errors are `llm.exceptions.LLMError` subclasses.
"""

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class ChatOptions:
    model: str
    temperature: float = 0.7
    max_tokens: int = 2048
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    system_prompt: str | None = None
    # Stream a JSON document conforming to this JSON Schema instead of free text (the
    # `structured` sentiment method decodes its "reply" field incrementally).
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThoughtDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True, slots=True)
class Finish:
    finish_reason: str  # normalised lower case: "stop", "length", "content_filter", …
    usage: Usage | None


Delta = TextDelta | ThoughtDelta | Finish


@runtime_checkable
class Provider(Protocol):
    name: str

    def preload(self) -> None:
        """Import and build now what the first call would (a server process calls it at start,
        before its event loop runs): a no-op for a provider with nothing to load."""
        ...

    def stream(self, messages: Sequence[ChatMessage], options: ChatOptions) -> AsyncGenerator[Delta, None]:
        """An async generator of deltas ending with one `Finish` (use it with `contextlib.aclosing`).

        Closing it (`aclose()` or cancellation) closes the upstream HTTP stream promptly.
        Raises only `LLMError` subclasses, before and after the first delta.
        """
        ...

    async def complete_json(
        self, messages: Sequence[ChatMessage], options: ChatOptions, schema: dict[str, Any], *, name: str = "result"
    ) -> dict[str, Any]:
        """One non-streamed answer that conforms to the JSON Schema `schema`."""
        ...
