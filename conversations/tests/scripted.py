"""A provider that plays a script, for testing the chat orchestration (ordering, persistence,
disconnects, failures, keep-alives) step by step. Provider support itself is tested in `llm`
with the real SDKs against wire-level fakes; the chat tests use those too."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from llm import ChatMessage, ChatOptions, Delta, Finish, LLMError, TextDelta, ThoughtDelta, Usage


@dataclass
class Script:
    steps: list[tuple[str, Any]] = field(default_factory=list)
    calls: list[tuple[list[ChatMessage], ChatOptions]] = field(default_factory=list)
    produced: list[str] = field(default_factory=list)  # text deltas handed to the chat
    closed: asyncio.Event | None = None
    closed_count: int = 0

    def reply(self, *words: str, delay: float = 0.0, thoughts: Sequence[str] = ()) -> "Script":
        self.steps = [("thought", t) for t in thoughts]
        for word in words:
            if delay:
                self.steps.append(("sleep", delay))
            self.steps.append(("text", word))
        self.steps.append(("finish", "stop"))
        return self


class ScriptedProvider:
    current: ClassVar[Script] = Script()

    def __init__(self, *, name: str, config: dict[str, Any]) -> None:
        self.name = name

    def preload(self) -> None:
        pass

    async def stream(self, messages: Sequence[ChatMessage], options: ChatOptions) -> AsyncIterator[Delta]:
        script = self.current
        script.calls.append((list(messages), options))
        try:
            for kind, value in script.steps:
                if kind == "sleep":
                    await asyncio.sleep(value)
                elif kind == "text":
                    script.produced.append(value)
                    yield TextDelta(value)
                elif kind == "thought":
                    yield ThoughtDelta(value)
                elif kind == "fail":
                    raise value
                elif kind == "crash":
                    raise RuntimeError("a bug, not a provider error")
                elif kind == "finish":
                    yield Finish(value, Usage(prompt_tokens=11, completion_tokens=len(script.produced)))
        finally:
            script.closed_count += 1
            if script.closed is not None:
                script.closed.set()

    async def complete_json(
        self, messages: Sequence[ChatMessage], options: ChatOptions, schema: dict[str, Any], *, name: str = "result"
    ) -> dict[str, Any]:
        raise LLMError("not scripted")
