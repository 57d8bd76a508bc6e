"""A local stand-in for Google Cloud Natural Language `documents:analyzeSentiment` (REST).

It speaks the wire format the real `google-cloud-language` client uses with the REST
transport: `POST /v1/documents:analyzeSentiment` or `/v2/...`, proto-JSON bodies with enums
as integers or names, Google's error bodies. Stdlib only; one daemon thread; port 0.

Scoring is deterministic: each sentence scores +0.4 per word of POSITIVE_WORDS and -0.4 per
word of NEGATIVE_WORDS (clamped to -1..1); the document score is the mean of the sentence
scores and the magnitude their absolute sum. `set_result()` forces a score instead.

Failures are injected with `fail_next(kind, times)` or by a marker in the document text,
e.g. "hello [nl:503]" (so tests that go through the chat can trigger them too):
`500`, `503`, `429` (Google error bodies; 429 with Retry-After), `403` (permission denied),
`400` (invalid argument, as for a language the API can't rate),
`malformed` (200 with a body that is not JSON), `slow` (answers after `slow_seconds`),
`stall` (answers after `stall_seconds`, released at once by `stop()`).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

POSITIVE_WORDS = frozenset(
    {"love", "great", "good", "happy", "wonderful", "excellent", "thanks", "amazing", "awesome", "glad", "enjoy"}
)
NEGATIVE_WORDS = frozenset(
    {"hate", "awful", "bad", "terrible", "sad", "angry", "horrible", "worst", "annoying", "upset", "broken"}
)
WORD_WEIGHT = 0.4
FAILURE_KINDS = ("400", "403", "429", "500", "503", "malformed", "slow", "stall")
PATHS = {"/v1/documents:analyzeSentiment": "v1", "/v2/documents:analyzeSentiment": "v2"}
DOCUMENT_TYPES = (1, 2, "PLAIN_TEXT", "HTML")
ENCODING_TYPES = (0, 1, 2, 3, "NONE", "UTF8", "UTF16", "UTF32")

_MARKER = re.compile(r"\[nl:(" + "|".join(FAILURE_KINDS) + r")\]")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_WORD = re.compile(r"[a-z']+")
_ERRORS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the raw text when it was not JSON

    @property
    def version(self) -> str | None:
        return PATHS.get(self.path)

    @property
    def content(self) -> str | None:
        document = self.body.get("document") if isinstance(self.body, dict) else None
        return document.get("content") if isinstance(document, dict) else None


def score_sentence(sentence: str) -> float:
    words = _WORD.findall(sentence.lower())
    raw = WORD_WEIGHT * (sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words))
    return round(max(-1.0, min(1.0, raw)), 4)


def analyze_text(text: str) -> tuple[float, float, list[tuple[str, int, float]]]:
    """(document score, magnitude, [(sentence, UTF-8 byte offset, score)]) by the rule above."""
    sentences = []
    for match in _SENTENCE.finditer(text):
        sentence = match.group().strip()
        if sentence:
            offset = len(text[: match.start() + match.group().index(sentence)].encode())
            sentences.append((sentence, offset, score_sentence(sentence)))
    scores = [score for _, _, score in sentences] or [0.0]
    return round(sum(scores) / len(scores), 4), round(sum(abs(s) for s in scores), 4), sentences


@dataclass
class _Control:
    failures: list[str] = field(default_factory=list)
    result: tuple[float, float] | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    disable_nagle_algorithm = True  # TCP_NODELAY
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._read_and_record()
        self._error(404, "Method not found.")

    def do_POST(self) -> None:
        request = self._read_and_record()
        fake = self.server.fake
        version = request.version
        if version is None:
            self._error(404, f"Path {request.path} not found.")
            return
        failure = fake._take_failure(request.content or "")
        if failure and self._fail(failure):
            return
        problem = self._invalid(request.body)
        if problem:
            self._error(400, problem)
            return
        if fake.api_key is not None and fake.api_key not in (
            request.headers.get("x-goog-api-key"),
            *request.query.get("key", []),
        ):
            self._error(403, "The request is missing a valid API key.")
            return
        self._send_json(200, fake._response(version, request.body))

    def _read_and_record(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        url = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        self.server.fake._record(request)
        return request

    def _fail(self, kind: str) -> bool:
        """Answer with the injected failure; False when the request should then succeed."""
        fake = self.server.fake
        if kind in ("slow", "stall"):
            fake._released.wait(fake.slow_seconds if kind == "slow" else fake.stall_seconds)
            return False
        if kind == "malformed":
            self._send(200, b'{"documentSentiment": {"score": 0.5,', "application/json")
        elif kind == "429":
            self._error(429, "Quota exceeded.", headers={"Retry-After": "1"})
        elif kind == "400":
            self._error(400, "The language xx is not supported for document_sentiment analysis.")
        else:
            self._error(int(kind), "Injected failure.")
        return True

    @staticmethod
    def _invalid(body: Any) -> str | None:
        document = body.get("document") if isinstance(body, dict) else None
        if not isinstance(document, dict):
            return "Invalid JSON payload: missing document."
        if not isinstance(document.get("content"), str) or not document["content"].strip():
            return "The document is empty."
        if document.get("type", 1) not in DOCUMENT_TYPES:
            return "Invalid value at 'document.type'."
        if body.get("encodingType", 0) not in ENCODING_TYPES:
            return "Invalid value at 'encoding_type'."
        return None

    def _error(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"code": code, "message": message, "status": _ERRORS.get(code, "UNKNOWN")}}
        self._send_json(code, body, headers)

    def _send_json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(body).encode(), "application/json; charset=UTF-8", headers)

    def _send(self, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    fake: FakeCloudNL


class FakeCloudNL:
    """`with FakeCloudNL() as fake:` then point the client at `fake.endpoint`."""

    def __init__(self, *, api_key: str | None = None, slow_seconds: float = 0.3, stall_seconds: float = 60.0):
        self.api_key = api_key  # when set, requests must carry it (x-goog-api-key or ?key=)
        self.slow_seconds = slow_seconds
        self.stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._control = _Control()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeCloudNL:
        self._released.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-cloud-nl", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # let stalled handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeCloudNL:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeCloudNL is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # control

    def fail_next(self, kind: str, times: int = 1) -> None:
        """The next `times` analyze requests fail as `kind` (see FAILURE_KINDS)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure {kind!r}; use one of {FAILURE_KINDS}")
        with self._lock:
            self._control.failures.extend([kind] * times)

    def set_result(self, score: float, magnitude: float | None = None) -> None:
        """Answer every request with this document score (and magnitude, default |score|)."""
        with self._lock:
            self._control.result = (score, abs(score) if magnitude is None else magnitude)

    def reset(self) -> None:
        with self._lock:
            self._control = _Control()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def analyze_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.version is not None]

    # used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_failure(self, content: str) -> str | None:
        with self._lock:
            if self._control.failures:
                return self._control.failures.pop(0)
        marker = _MARKER.search(content)
        return marker.group(1) if marker else None

    def _response(self, version: str, body: dict[str, Any]) -> dict[str, Any]:
        document = body["document"]
        text = document["content"]
        score, magnitude, sentences = analyze_text(text)
        with self._lock:
            if self._control.result is not None:
                score, magnitude = self._control.result
        utf8 = body.get("encodingType", 0) in (1, "UTF8")
        response: dict[str, Any] = {
            "documentSentiment": {"magnitude": magnitude, "score": score},
            "sentences": [
                {
                    "text": {"content": sentence, "beginOffset": offset if utf8 else -1},
                    "sentiment": {"magnitude": abs(sentence_score), "score": sentence_score},
                }
                for sentence, offset, sentence_score in sentences
            ],
        }
        language = document.get("languageCode") or document.get("language") or "en"
        if version == "v1":
            response["language"] = language
        else:
            response["languageCode"] = language
            response["languageSupported"] = True
        return response
