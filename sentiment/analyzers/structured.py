"""Method `structured`: the chat call itself returns the reply and the sentiment as one JSON document.

The provider streams `{"reply": "<markdown>", "sentiment": {"score", "label", "emotion"}}` as
text deltas. `StructuredReplyDecoder` turns them into reply text as it arrives and, at the
end, into the message Sentiment. Only decoded reply text ever leaves the decoder, never JSON
syntax (CONTRACT §7.10).

The decoder is a small incremental JSON lexer: it keeps a stack of open containers, streams
the characters of the top-level `reply` string (decoding escapes, including ones split across
deltas and UTF-16 surrogate pairs), and remembers where the top-level `sentiment` value starts
and ends so it can be parsed once the document is complete. Keys may come in any order.

OpenAI-compatible servers that ignore `response_format` often wrap the document in a Markdown
code fence (a line of backticks, perhaps with the language tag `json`, before it, and
backticks after it): the opening fence is skipped and, like anything after the document, the
closing one is ignored. Until the first characters show whether a document
starts, they are held back. If the output starts with neither `{` nor a fence opening one,
the model ignored the format: the text is the reply.
"""

import json
import re
from typing import Any

import structlog

from sentiment.analyzers.llm_separate import SCHEMA as MESSAGE_SCHEMA
from sentiment.analyzers.llm_separate import parse_response
from sentiment.exceptions import InvalidAnalyzerResponse
from sentiment.normalize import neutral_fallback
from sentiment.types import Sentiment

SOURCE = "structured"

log = structlog.get_logger(__name__)

STRUCTURED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "description": "The full answer to the user, in Markdown."},
        "sentiment": {
            **MESSAGE_SCHEMA,
            "description": "The sentiment of the user's latest message (not of the reply).",
        },
    },
    "required": ["reply", "sentiment"],
    "additionalProperties": False,
}

STRUCTURED_INSTRUCTIONS = """\
Answer format: write one JSON object and nothing else, with "reply" first:
{"reply": "<your answer>", "sentiment": {"score": <number>, "label": "<label>", "emotion": "<emotion>"}}
- reply: everything the user should read, exactly as you would answer without this format \
(Markdown allowed), as a JSON string.
- sentiment: rates the user's latest message, not your reply. score from -1.0 (very negative) \
through 0.0 to 1.0 (very positive); label "Positive" if score > 0.1, "Negative" if score < -0.1, \
otherwise "Neutral"; emotion: the user's main emotion in 1-3 lower-case words (e.g. curious, grateful).
- No text before or after the object, no code fences."""

# Lexer states.
_VALUE = "value"  # a value is expected
_ARRAY_START = "array_start"  # after `[`: a value or `]`
_OBJECT_START = "object_start"  # after `{`: a key or `}`
_KEY = "key"  # after `,` in an object: a key
_COLON = "colon"
_AFTER_VALUE = "after_value"  # `,` or a closing bracket
_STRING = "string"
_ESCAPE = "escape"  # after a backslash
_HEX = "hex"  # inside \uXXXX
_LITERAL = "literal"  # number, true, false, null
_END = "end"  # the top-level object is closed; anything after it is ignored
_BROKEN = "broken"  # not JSON: nothing more is emitted

_WHITESPACE = frozenset(" \t\n\r")
_LITERAL_CHARS = frozenset("0123456789+-.eEtrufalsn")
_LITERAL_START = frozenset("-0123456789tfn")
_LITERAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_STRING_SPECIAL = re.compile(r'["\\]')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_REPLACEMENT = "\ufffd"  # for a lone UTF-16 surrogate, which has no UTF-8 form
# A code fence opening the document: backticks, no language tag or a JSON one, whitespace, then
# `{` (matched up to it); and what may still become one, held back until it does or doesn't.
# Another tag is code, not the document (a review lost a reply that was a ```js block opening
# with `{`).
_FENCE_OPENING = re.compile(r"\s*`{3,}(?:json[c5]?)?\s*(?=\{)", re.IGNORECASE)
_FENCE_PREFIX = re.compile(r"\s*(?:`{1,2}|`{3,}(?:j(?:s(?:o(?:n[c5]?)?)?)?)?\s*)?", re.IGNORECASE)


class StructuredReplyDecoder:
    """Feed the provider's text deltas; get reply text back; call `flush()`, then `finish()`
    at the end.

    `feed(delta)` returns the reply text newly decoded by this delta (often ""). `flush()`, once
    the stream has ended, returns the text still held back (often ""): output that began like a
    code fence but opened no document is the reply. `finish()` returns the normalised message
    Sentiment (source `structured`), or the neutral fallback (source `default`,
    `details.error`) when the output is not a JSON document, is not valid JSON, is truncated,
    or has no usable `sentiment`.
    """

    def __init__(self) -> None:
        self._mode = "undecided"  # undecided | json | text
        self._held = ""  # the opening (whitespace, a fence), until it decides the mode
        self._reply: list[str] = []
        self._raw: list[str] = []  # the whole JSON document, for the sentiment span
        self._position = 0  # index in the document of the first character of the current delta
        self._out: list[str] = []
        self._result: Sentiment | None = None

        self._state = _VALUE
        self._stack: list[str] = []
        self._string_kind = "value"  # key | reply | value
        self._key_chars: list[str] = []
        self._hex = ""
        self._high_surrogate: int | None = None
        self._literal: list[str] = []
        self._reply_started = False
        self._current_key: str | None = None  # the last key read at depth 1
        self._value_key: str | None = None  # the key of the depth-1 value being read
        self._value_start: int | None = None
        self._spans: dict[str, tuple[int, int]] = {}

    @property
    def reply_text(self) -> str:
        """All reply text returned by `feed` so far."""
        return "".join(self._reply)

    def feed(self, delta: str) -> str:
        if not delta:
            return ""
        if self._mode == "undecided":
            delta = self._decide(delta)
            if self._mode == "undecided":
                return ""
        if self._mode == "text":
            self._reply.append(delta)
            return delta
        self._out = []
        self._consume(delta)
        text = "".join(self._out)
        if text:
            self._reply.append(text)
        return text

    def flush(self) -> str:
        if self._mode != "undecided" or not self._held.strip():
            return ""  # blank output is no reply (finish: "empty")
        self._mode = "text"
        text, self._held = self._held, ""
        self._reply.append(text)
        return text

    def finish(self) -> Sentiment:
        if self._result is None:
            self._result = self._finish()
        return self._result

    def _decide(self, delta: str) -> str:
        """Hold the output back while it may still open a document (blank, or a fence so far);
        then set the mode and return the held text from where the reply or the document starts."""
        held = self._held + delta
        if _FENCE_PREFIX.fullmatch(held):
            self._held = held
            return ""
        self._held = ""
        if fence := _FENCE_OPENING.match(held):
            self._mode = "json"
            return held[fence.end() :]
        self._mode = "json" if held.lstrip()[0] == "{" else "text"
        return held

    # end of stream

    def _finish(self) -> Sentiment:
        error = self._problem()
        if error is None:
            start, end = self._spans["sentiment"]
            try:
                return parse_response(json.loads("".join(self._raw)[start:end], strict=False), source=SOURCE)
            except (ValueError, InvalidAnalyzerResponse):
                error = "invalid_sentiment"
        log.warning("sentiment.failed", method=SOURCE, reason=error, reply_chars=len(self.reply_text))
        return neutral_fallback(error)

    def _problem(self) -> str | None:
        if self._mode == "undecided":
            return "not_json" if self._held.strip() else "empty"
        if self._mode == "text":
            return "not_json"
        if self._state == _BROKEN:
            return "invalid_json"
        if self._state != _END:
            return "truncated"
        if "sentiment" not in self._spans:
            return "missing_sentiment"
        return None

    # the lexer

    def _consume(self, chunk: str) -> None:
        base = self._position
        self._raw.append(chunk)
        self._position += len(chunk)
        i, n = 0, len(chunk)
        while i < n and self._state not in (_END, _BROKEN):
            state = self._state
            if state == _STRING:
                match = _STRING_SPECIAL.search(chunk, i)
                stop = match.start() if match else n
                if stop > i:
                    self._emit(chunk[i:stop])
                    i = stop
                    continue
                if chunk[i] == '"':
                    self._end_string(base + i)
                else:
                    self._state = _ESCAPE
                i += 1
            elif state == _ESCAPE:
                self._escape(chunk[i])
                i += 1
            elif state == _HEX:
                piece = chunk[i : i + 4 - len(self._hex)]
                i += len(piece)
                self._hex_digits(piece)
            elif state == _LITERAL:
                if chunk[i] in _LITERAL_CHARS:
                    self._literal.append(chunk[i])
                    i += 1
                else:
                    self._end_literal(base + i)  # the character is read again in the next state
            else:
                self._structure(chunk[i], base + i)
                i += 1

    def _structure(self, char: str, position: int) -> None:
        if char in _WHITESPACE:
            return
        state = self._state
        if state in (_VALUE, _ARRAY_START):
            if state == _ARRAY_START and char == "]":
                self._close(position)
            else:
                self._start_value(char, position)
        elif state in (_OBJECT_START, _KEY):
            if char == '"':
                self._start_string("key")
            elif char == "}":  # empty object, or a trailing comma (tolerated)
                self._close(position)
            else:
                self._break()
        elif state == _COLON:
            if char == ":":
                self._state = _VALUE
            else:
                self._break()
        elif state == _AFTER_VALUE:
            if char == ",":
                self._state = _KEY if self._stack[-1] == "{" else _VALUE
            elif (char == "}" and self._stack[-1] == "{") or (char == "]" and self._stack[-1] == "["):
                self._close(position)
            else:
                self._break()

    def _start_value(self, char: str, position: int) -> None:
        if not self._stack and char != "{":
            self._break()
            return
        if len(self._stack) == 1:
            self._value_key, self._value_start = self._current_key, position
        if char in "{[":
            self._stack.append(char)
            self._state = _OBJECT_START if char == "{" else _ARRAY_START
        elif char == '"':
            is_reply = len(self._stack) == 1 and self._current_key == "reply" and not self._reply_started
            self._reply_started = self._reply_started or is_reply
            self._start_string("reply" if is_reply else "value")
        elif char in _LITERAL_START:
            self._literal = [char]
            self._state = _LITERAL
        else:
            self._break()

    def _close(self, position: int) -> None:
        self._stack.pop()
        if self._stack:
            self._value_done(position + 1)
        else:
            self._state = _END

    def _value_done(self, end: int) -> None:
        if len(self._stack) == 1 and self._value_start is not None and self._value_key is not None:
            self._spans[self._value_key] = (self._value_start, end)
            self._value_start = None
        self._state = _AFTER_VALUE

    def _end_literal(self, end: int) -> None:
        if _LITERAL.fullmatch("".join(self._literal)):
            self._value_done(end)
        else:
            self._break()

    # strings

    def _start_string(self, kind: str) -> None:
        self._string_kind = kind
        self._key_chars = []
        self._state = _STRING

    def _end_string(self, position: int) -> None:
        self._flush_surrogate()
        if self._string_kind == "key":
            if len(self._stack) == 1:
                self._current_key = "".join(self._key_chars)
            self._state = _COLON
        else:
            self._value_done(position + 1)

    def _escape(self, char: str) -> None:
        if char == "u":
            self._hex = ""
            self._state = _HEX
        elif char in _ESCAPES:
            self._emit(_ESCAPES[char])
            self._state = _STRING
        else:
            self._break()

    def _hex_digits(self, piece: str) -> None:
        if not set(piece) <= _HEX_DIGITS:
            self._break()
            return
        self._hex += piece
        if len(self._hex) < 4:
            return
        self._state = _STRING
        code = int(self._hex, 16)
        if 0xD800 <= code <= 0xDBFF:  # high surrogate: wait for its low half
            self._flush_surrogate()
            self._high_surrogate = code
        elif 0xDC00 <= code <= 0xDFFF:
            if self._high_surrogate is None:
                self._put(_REPLACEMENT)
            else:
                self._put(chr(0x10000 + ((self._high_surrogate - 0xD800) << 10) + (code - 0xDC00)))
                self._high_surrogate = None
        else:
            self._emit(chr(code))

    def _emit(self, text: str) -> None:
        self._flush_surrogate()
        self._put(text)

    def _flush_surrogate(self) -> None:
        if self._high_surrogate is not None:
            self._high_surrogate = None
            self._put(_REPLACEMENT)

    def _put(self, text: str) -> None:
        if self._string_kind == "reply":
            self._out.append(text)
        elif self._string_kind == "key":
            self._key_chars.append(text)

    def _break(self) -> None:
        self._state = _BROKEN
