"""The offline provider: no key, no network, same answer for the same conversation.

It makes a fresh checkout usable (development serves gemini/openai with it when they have no
key) and gives tests a provider that behaves like a real one: replies arrive token by token at a
configurable pace (`DELAY_MS`, default ~25 ms a token), optional thoughts come first,
`max_tokens` truncates with finish reason "length", and JSON calls get schema-valid objects
whose sentiment fields follow a small word list.
"""

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from llm.interface import ChatMessage, ChatOptions, Delta, Finish, TextDelta, ThoughtDelta, Usage
from llm.schema import schema_instance

_TOKEN = re.compile(r"\s*\S+")
_WORD = re.compile(r"[a-z']+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_POSITIVE = _words(
    "good great love loved lovely happy glad thanks thank awesome amazing excellent nice wonderful fantastic "
    "enjoy enjoyed fun cool perfect beautiful excited best like yay"
)
_NEGATIVE = _words(
    "bad terrible awful hate hated sad angry upset annoyed worst horrible broken fail failed failing wrong "
    "problem problems worried afraid tired frustrated disappointed sick hurt lonely"
)
_GREETINGS = _words("hi hello hey hallo hola morning evening")


def tokens(text: str) -> list[str]:
    """Word-sized pieces that concatenate back to `text` exactly (whitespace leads, like BPE)."""
    return _TOKEN.findall(text)


def sentiment_of(text: str) -> tuple[float, str, str]:
    """A crude (score, label, emotion) from word counts: enough for the offline sentiment path."""
    words = _WORD.findall(text.lower())
    positive = sum(w in _POSITIVE for w in words)
    negative = sum(w in _NEGATIVE for w in words)
    if positive == negative:
        return 0.0, "Neutral", "curious" if "?" in text else "neutral"
    score = round(0.8 * (positive - negative) / (positive + negative), 4)
    if score > 0.1:
        return score, "Positive", "happy"
    if score < -0.1:
        return score, "Negative", "frustrated"
    return score, "Neutral", "neutral"


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def compose_reply(messages: Sequence[ChatMessage]) -> str:
    text = _last_user_text(messages).strip()
    words = _WORD.findall(text.lower())
    score, _, _ = sentiment_of(text)
    if words and words[0] in _GREETINGS:
        opening = "Hello! "
    elif score > 0.1:
        opening = "That sounds great! "
    elif score < -0.1:
        opening = "I'm sorry to hear that. "
    elif text.endswith("?"):
        opening = "Good question. "
    else:
        opening = "Thanks for your message. "
    quoted = text if len(text) <= 80 else text[:77].rstrip() + "…"
    turn = sum(m.role == "user" for m in messages)
    return (
        f"{opening}I'm **Lia**, running in offline mode, so this reply comes from a built-in stand-in "
        f"rather than a language model. You wrote {len(words)} word{'s' if len(words) != 1 else ''}"
        + (f": “{quoted}”" if quoted else "")
        + f" (message {turn} of this conversation).\n\n"
        "To talk to a real model, set `GEMINI_API_KEY` or `OPENAI_API_KEY`."
    )


def compose_thoughts(messages: Sequence[ChatMessage]) -> str:
    text = _last_user_text(messages)
    _, label, _ = sentiment_of(text)
    kind = "a question" if text.strip().endswith("?") else "a message"
    return f"The user sent {kind} that reads as {label.lower()}. I should answer briefly and mention offline mode."


class OfflineProvider:
    def __init__(self, *, name: str = "offline", config: Mapping[str, Any] | None = None, **_: Any) -> None:
        options = (config or {}).get("OPTIONS") or {}
        self.name = name
        self.delay = max(0.0, float(options.get("DELAY_MS", 25))) / 1000
        self.thoughts = bool(options.get("THOUGHTS", True))

    def preload(self) -> None:
        pass

    async def stream(self, messages: Sequence[ChatMessage], options: ChatOptions) -> AsyncGenerator[Delta, None]:
        if self.thoughts:
            for piece in tokens(compose_thoughts(messages)):
                await asyncio.sleep(self.delay)
                yield ThoughtDelta(piece)
        if options.json_schema is not None:
            text = json.dumps(self._json_answer(messages, options.json_schema), ensure_ascii=False)
        else:
            text = compose_reply(messages)
        pieces = tokens(text)
        finish_reason = "stop"
        if len(pieces) > options.max_tokens:
            pieces, finish_reason = pieces[: options.max_tokens], "length"
        for piece in pieces:
            await asyncio.sleep(self.delay)
            yield TextDelta(piece)
        yield Finish(
            finish_reason, Usage(prompt_tokens=self._prompt_tokens(messages, options), completion_tokens=len(pieces))
        )

    async def complete_json(
        self, messages: Sequence[ChatMessage], options: ChatOptions, schema: dict[str, Any], *, name: str = "result"
    ) -> dict[str, Any]:
        await asyncio.sleep(self.delay * 4)
        return self._json_answer(messages, schema)

    def _json_answer(self, messages: Sequence[ChatMessage], schema: Mapping[str, Any]) -> Any:
        text = _last_user_text(messages)
        score, label, emotion = sentiment_of(text)
        reply = compose_reply(messages)
        hints = {
            "reply": reply,
            "response": reply,
            "answer": reply,
            "text": reply,
            "content": reply,
            "score": score,
            "sentiment_score": score,
            "label": label,
            "sentiment": label,
            "sentiment_label": label,
            "emotion": emotion,
            "summary": f"User is {emotion}",
        }
        return schema_instance(schema, hints)

    @staticmethod
    def _prompt_tokens(messages: Sequence[ChatMessage], options: ChatOptions) -> int:
        texts = [m.content for m in messages] + [options.system_prompt or ""]
        return sum(len(tokens(t)) for t in texts)
