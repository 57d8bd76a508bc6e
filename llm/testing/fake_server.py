"""A local fake of the OpenAI and Gemini HTTP APIs, for driving the real SDKs in tests.

One stdlib ThreadingHTTPServer on 127.0.0.1, port 0, in a daemon thread, speaks:

* OpenAI chat completions: ``POST …/chat/completions`` under any prefix (``/v1``, ``/compat/v1``),
  streamed (SSE chunks, ``reasoning_content`` thoughts, finish chunk, usage chunk, ``[DONE]``) or
  not, ``response_format`` json_schema answered with a schema-valid JSON string;
* Gemini: ``POST …/models/{model}:streamGenerateContent?alt=sse`` and ``…:generateContent`` under
  any version prefix, thought parts (``"thought": true``), ``usageMetadata``, finish reasons, JSON
  mode (``responseJsonSchema`` / ``responseSchema``).

Using it::

    fake = FakeLLMServer().start()      # or the pytest fixtures `fake_llm` / `fake_llm_providers`
    fake.openai_base_url                # "http://127.0.0.1:PORT/v1"  (OPENAI_BASE_URL)
    fake.gemini_base_url                # "http://127.0.0.1:PORT"     (GEMINI_BASE_URL)
    fake.provider_settings()            # an LLM_PROVIDERS dict: gemini, openai and an
                                        # OpenAI-compatible "compat" at /compat/v1, all on the fake

Control API (thread-safe; `reset()` restores everything):

* ``fake.script(text=…, thoughts=[…], chunks=20, delay=0.01, first_delay=0, finish_reason="stop",
  prompt_tokens=9, completion_tokens=None, usage=True, json=None, then=None, after=1)``:
  the reply of every following request. ``chunks`` is a list of text pieces, or a count of
  generated words (``"w1 w2 …"``); default: ``text`` split into words. ``delay`` is the pause
  between frames (seconds); ``json_delay`` delays only non-streamed (JSON) answers. ``json``
  answers JSON calls (default: an instance of the request's
  schema whose "reply"-like strings hold ``text``). ``then`` breaks the stream after ``after``
  text frames: ``"cut"`` (socket closed mid-body), ``"error"`` (an error frame: OpenAI
  ``{"error":…}``, Gemini 503), ``"stall"`` (silence for ``fake.stall_seconds``), ``"garbage"``
  (a frame that is not JSON), ``"end"`` (clean end of body with no finish reason and no ``[DONE]``).
* ``fake.fail_next(429, retry_after=1, times=1)``: the next ``times`` requests fail before any
  byte of body with that HTTP status (401, 403, 404 unknown model, 429 with ``Retry-After``
  and Gemini ``RetryInfo``, 500, 503). ``fake.fail_next("cut" | "error" | "stall" | "end",
  after=1)`` breaks only the next stream. Queued failures go before the script.
* The model name also selects behaviour, with no control call, by dash-separated words:
  ``401 403 404 429 500 503`` (fail), ``cut error stall end`` (break after one frame),
  ``think`` (two thought frames first), ``slow`` (50 ms between frames), ``long`` (200 frames),
  ``filtered`` (finish reason content_filter). E.g. ``gpt-4o-429`` or ``gemini-2.5-flash-cut``.
* ``fake.valid_keys = {"sk-fake"}`` rejects other keys (OpenAI 401, Gemini 400 API_KEY_INVALID);
  ``None`` (default) accepts any.

Observation:

* ``fake.requests``: every request as a ``Recorded`` (``api`` "openai"/"gemini", ``method``,
  ``path``, ``query``, lower-cased ``headers``, JSON ``body``, ``model``, ``peer_port``,
  ``outcome``: "complete", "failed", "broken" or "disconnected"). ``fake.last`` is the latest.
  Retries show up as several requests; equal ``peer_port`` values mean one reused keep-alive
  connection.
* ``fake.disconnects``: requests whose client went away before the response ended (detected
  at once, also during delays and stalls, so a test can prove the SDK stream was closed);
  ``fake.wait_for_disconnect(count=1, timeout=5)`` waits for them; ``fake.wait_settled()`` waits
  until no request is still "pending".
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from llm.schema import schema_instance

GEMINI_PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>streamGenerateContent|generateContent)$")
BREAKS = ("cut", "error", "stall", "end", "garbage")
GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
OPENAI_ERRORS = {
    400: ("invalid_request_error", "invalid_request", "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-fa***ke."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", "server_error", "The server had an error while processing your request."),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded."),
}


@dataclass(frozen=True)
class Script:
    text: str = "Hello from the fake model."
    thoughts: Sequence[str] = ()
    chunks: Sequence[str] | int | None = None
    delay: float = 0.0
    first_delay: float = 0.0
    json_delay: float = 0.0  # extra wait before answering a non-streamed (JSON) call
    finish_reason: str = "stop"
    prompt_tokens: int = 9
    completion_tokens: int | None = None
    usage: bool = True
    json: Any = None
    then: str | None = None
    after: int = 1

    def pieces(self) -> list[str]:
        if isinstance(self.chunks, int):
            return [f"w{i}" if i == self.chunks else f"w{i} " for i in range(1, self.chunks + 1)]
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\s*\S+", self.text) or [self.text]


@dataclass(frozen=True)
class Failure:
    status: int = 0  # an HTTP status, or 0 for a mid-stream break
    retry_after: float | None = None
    then: str | None = None
    after: int = 1


@dataclass
class Recorded:
    api: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    peer_port: int = 0  # the client's port: equal ports = one reused keep-alive connection
    outcome: str = "pending"

    @property
    def model(self) -> str | None:
        if self.api == "gemini":
            match = GEMINI_PATH.search(self.path)
            return match["model"] if match else None
        return self.body.get("model") if isinstance(self.body, dict) else None


def _readable(sock: socket.socket, seconds: float, *also: socket.socket) -> bool:
    """select() for a socket (or any of `also`), by poll(): select() refuses descriptors past
    1023, which a benchmark holding a thousand streams open reaches."""
    poller = select.poll()
    for each in (sock, *also):
        poller.register(each, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(seconds * 1000))


class ClientGone(Exception):
    """The client closed the connection before the response ended."""


class FakeLLMServer:
    def __init__(self) -> None:
        self.stall_seconds = 30.0
        self.valid_keys: set[str] | None = None
        self._lock = threading.Condition()
        self._script = Script()
        self._failures: list[Failure] = []
        self.requests: list[Recorded] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        # Readable (at its end) once stop() closes its peer: waits poll it with the client's
        # socket, so a paced reply sleeps in one poll per gap (a thousand held-open streams were
        # 20,000 wake-ups a second when they looked at `stopping` every 50 ms).
        self._stop_signal, self._stop_sender = socket.socketpair()

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._stop_sender.close()  # every wait wakes, now and later (idempotent)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("start() the fake first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def gemini_base_url(self) -> str:
        return self.url

    @property
    def compat_base_url(self) -> str:
        return f"{self.url}/compat/v1"

    def provider_settings(self, *, offline: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """An LLM_PROVIDERS value with gemini, openai and "compat" served by this fake."""
        return {
            "gemini": {
                "BACKEND": "llm.providers.gemini.GeminiProvider",
                "API_KEY": "g-fake",
                "KEY_REQUIRED": True,
                "BASE_URL": self.gemini_base_url,
                "OPTIONS": {},
            },
            "openai": {
                "BACKEND": "llm.providers.openai.OpenAIProvider",
                "API_KEY": "sk-fake",
                "KEY_REQUIRED": True,
                "BASE_URL": self.openai_base_url,
            },
            "compat": {
                "BACKEND": "llm.providers.openai.OpenAICompatibleProvider",
                "API_KEY": "",
                "BASE_URL": self.compat_base_url,
                "MODELS": ["fake-small=Fake Small", "fake-large"],
            },
            "offline": offline
            or {"BACKEND": "llm.providers.offline.OfflineProvider", "OPTIONS": {"DELAY_MS": 1, "THOUGHTS": True}},
        }

    # --- control ------------------------------------------------------------------

    def script(self, **fields: Any) -> Script:
        with self._lock:
            self._script = Script(**fields)
            return self._script

    def fail_next(self, what: int | str, *, times: int = 1, retry_after: float | None = None, after: int = 1) -> None:
        if isinstance(what, str):
            if what not in BREAKS:
                raise ValueError(f"fail_next: {what!r} is not one of {BREAKS} or an HTTP status")
            failure = Failure(then=what, after=after)
        else:
            failure = Failure(status=what, retry_after=retry_after)
        with self._lock:
            self._failures.extend([failure] * times)

    def reset(self) -> None:
        with self._lock:
            self._script = Script()
            self._failures.clear()
            self.requests.clear()
            self.valid_keys = None
            self.stall_seconds = 30.0

    @property
    def last(self) -> Recorded:
        with self._lock:
            return self.requests[-1]

    @property
    def disconnects(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.outcome == "disconnected"]

    def wait_for_disconnect(self, count: int = 1, timeout: float = 5.0) -> bool:
        with self._lock:
            return self._lock.wait_for(
                lambda: sum(r.outcome == "disconnected" for r in self.requests) >= count, timeout=timeout
            )

    def wait_settled(self, timeout: float = 5.0) -> bool:
        """Wait until every recorded request has an outcome: the client can read a response's
        last byte a moment before the handler records "complete"."""
        with self._lock:
            return self._lock.wait_for(lambda: all(r.outcome != "pending" for r in self.requests), timeout=timeout)

    # --- used by the handler --------------------------------------------------------

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _finish(self, recorded: Recorded, outcome: str) -> None:
        with self._lock:
            recorded.outcome = outcome
            self._lock.notify_all()

    def _plan(self, model: str) -> tuple[Failure | None, Script]:
        """What to do for this request: a queued failure, the model name's words, or the script."""
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            script = self._script
        words = set(re.split(r"[-_]", model.lower()))
        if failure is None:
            for status in (401, 403, 404, 429, 500, 503):
                if str(status) in words:
                    failure = Failure(status=status, retry_after=0 if status == 429 else None)
            for name in BREAKS:
                if name in words:
                    failure = Failure(then=name, after=1)
        if "think" in words:
            script = replace(script, thoughts=("Thinking about the question. ", "Planning a short answer."))
        if "slow" in words:
            script = replace(script, delay=0.05)
        if "long" in words:
            script = replace(script, chunks=200)
        if "filtered" in words:
            script = replace(script, finish_reason="content_filter")
        if failure is not None and failure.then:
            script = replace(script, then=failure.then, after=failure.after)
            failure = None
        return failure, script


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default backlog of 5 causes SYN retries under load (ECOSYSTEM §5.5)
    fake: FakeLLMServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like the real APIs
    disable_nagle_algorithm = True  # TCP_NODELAY: without it the first frame is ~40 ms late
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing ---------------------------------------------------------------------

    @property
    def fake(self) -> FakeLLMServer:
        return self.server.fake

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:12]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        """One SSE frame = one HTTP chunk, flushed at once."""
        try:
            self._check_client()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone from exc

    def _frame(self, payload: Any) -> None:
        self._chunk(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")

    def _end_stream(self) -> None:
        self._chunk(b"")  # the zero-length chunk ends the body

    def _check_client(self) -> None:
        """Raise ClientGone if the client closed its end (readable + EOF: it sends nothing else)."""
        if _readable(self.connection, 0):
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    raise ClientGone
            except OSError as exc:
                raise ClientGone from exc

    def _wait(self, seconds: float) -> None:
        """Sleep, noticing a client that goes away meanwhile (and a server that stops)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self.fake.stopping.is_set():
            if _readable(self.connection, remaining, self.fake._stop_signal):
                if self.fake.stopping.is_set():
                    return
                self._check_client()
                time.sleep(min(remaining, 0.05))  # readable but not closed: look again shortly

    def _cut(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _key_ok(self, key: str | None) -> bool:
        return self.fake.valid_keys is None or key in self.fake.valid_keys

    # --- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._json(404, {"error": {"message": "Not found", "code": 404}})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        gemini = GEMINI_PATH.search(url.path)
        if url.path.endswith("/chat/completions"):
            api = "openai"
        elif gemini:
            api = "gemini"
        else:
            self._json(404, {"error": {"message": f"No route for {url.path}", "code": 404}})
            return
        recorded = Recorded(api, "POST", url.path, query, headers, body, peer_port=self.client_address[1])
        self.fake._record(recorded)
        try:
            if api == "openai":
                outcome = self._openai(recorded)
            else:
                outcome = self._gemini(recorded, gemini["model"], gemini["method"] == "streamGenerateContent")
        except ClientGone:
            self.close_connection = True
            outcome = "disconnected"
        self.fake._finish(recorded, outcome)

    # --- OpenAI -------------------------------------------------------------------------

    def _openai_error(self, status: int, retry_after: float | None = None, message: str | None = None) -> str:
        kind, code, default = OPENAI_ERRORS.get(status, ("server_error", "server_error", "Error."))
        headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
        error = {"message": message or default, "type": kind, "param": None, "code": code}
        self._json(status, {"error": error}, headers)
        return "failed"

    def _openai(self, recorded: Recorded) -> str:
        body = recorded.body if isinstance(recorded.body, dict) else {}
        authorization = recorded.headers.get("authorization", "")
        if not self._key_ok(authorization.removeprefix("Bearer ") or None):
            return self._openai_error(401)
        model = str(body.get("model", ""))
        failure, script = self.fake._plan(model)
        if failure is not None:
            return self._openai_error(failure.status, failure.retry_after)
        response_format = body.get("response_format") or {}
        if response_format.get("type") in ("json_schema", "json_object"):
            schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
            document = json.dumps(_json_answer(script, schema), ensure_ascii=False)
            script = replace(script, chunks=[document[i : i + 8] for i in range(0, len(document), 8)])
        pieces = script.pieces()
        completion_tokens = script.completion_tokens if script.completion_tokens is not None else len(pieces)
        usage = {
            "prompt_tokens": script.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": script.prompt_tokens + completion_tokens,
        }
        envelope = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:10]}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            self._wait(script.first_delay + script.json_delay)
            message = {"role": "assistant", "content": "".join(pieces), "refusal": None, "annotations": []}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": script.finish_reason}
            self._json(200, {**envelope, "object": "chat.completion", "choices": [choice], "usage": usage})
            return "complete"

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def frame(delta: dict[str, Any], finish: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            chunk = {**envelope, "object": "chat.completion.chunk", "choices": [choice]}
            if include_usage:
                chunk["usage"] = None
            self._frame(chunk)

        self._start_stream()
        self._wait(script.first_delay)
        frame({"role": "assistant", "content": "", "refusal": None})
        for thought in script.thoughts:
            frame({"reasoning_content": thought})
            self._wait(script.delay)
        for index, piece in enumerate(pieces):
            if script.then and index == script.after:
                return self._openai_break(script.then)
            frame({"content": piece})
            self._wait(script.delay)
        if script.then and script.after >= len(pieces):
            return self._openai_break(script.then)
        frame({}, script.finish_reason)
        if include_usage and script.usage:
            self._frame({**envelope, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._end_stream()
        return "complete"

    def _openai_break(self, then: str) -> str:
        if then == "error":
            self._frame({"error": {"message": "The server had an error.", "type": "server_error", "code": None}})
            self._end_stream()
        elif then == "stall":
            self._wait(self.fake.stall_seconds)
            self._end_stream()
        elif then == "garbage":
            self._chunk(b'data: {"not": json, truncated\n\n')
            self._end_stream()
        elif then == "end":
            self._end_stream()
        else:
            self._cut()
        return "broken"

    # --- Gemini -------------------------------------------------------------------------

    def _gemini_error(self, status: int, retry_after: float | None = None) -> str:
        message = {
            400: "API key not valid. Please pass a valid API key.",
            404: "models/unknown is not found for API version v1, or is not supported for generateContent.",
            429: "Resource has been exhausted (e.g. check quota).",
        }.get(status, "An internal error has occurred.")
        error: dict[str, Any] = {"code": status, "message": message, "status": GEMINI_STATUS.get(status, "UNKNOWN")}
        headers: dict[str, str] = {}
        if status == 400:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
        if retry_after is not None:
            headers["Retry-After"] = _seconds(retry_after)
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{_seconds(retry_after)}s"}
            ]
        self._json(status, {"error": error}, headers)
        return "failed"

    def _gemini(self, recorded: Recorded, model: str, stream: bool) -> str:
        body = recorded.body if isinstance(recorded.body, dict) else {}
        if not self._key_ok(recorded.headers.get("x-goog-api-key")):
            return self._gemini_error(400)
        failure, script = self.fake._plan(model)
        if failure is not None:
            return self._gemini_error(failure.status, failure.retry_after)
        config = body.get("generationConfig") or body.get("generation_config") or {}
        if config.get("responseMimeType", config.get("response_mime_type")) == "application/json":
            schema = next(
                (
                    config[key]
                    for key in ("responseJsonSchema", "response_json_schema", "responseSchema", "response_schema")
                    if key in config
                ),
                {"type": "object"},
            )
            document = json.dumps(_json_answer(script, schema), ensure_ascii=False)
            script = replace(script, chunks=[document[i : i + 8] for i in range(0, len(document), 8)])
        pieces = script.pieces()
        thoughts_tokens = len(script.thoughts)
        candidates_tokens = script.completion_tokens if script.completion_tokens is not None else len(pieces)
        envelope = {"modelVersion": model, "responseId": uuid.uuid4().hex[:16]}

        def usage(final: bool) -> dict[str, Any]:
            if not final:
                return {"promptTokenCount": script.prompt_tokens, "totalTokenCount": script.prompt_tokens}
            result = {
                "promptTokenCount": script.prompt_tokens,
                "candidatesTokenCount": candidates_tokens,
                "totalTokenCount": script.prompt_tokens + candidates_tokens + thoughts_tokens,
            }
            if thoughts_tokens:
                result["thoughtsTokenCount"] = thoughts_tokens
            return result

        def response(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                candidate["finishReason"] = GEMINI_FINISH.get(finish, finish.upper())
            payload: dict[str, Any] = {"candidates": [candidate], **envelope}
            if script.usage:
                payload["usageMetadata"] = usage(final=finish is not None)
            return payload

        if not stream:
            self._wait(script.first_delay + script.json_delay)
            parts = [{"text": t, "thought": True} for t in script.thoughts] + [{"text": "".join(pieces)}]
            self._json(200, response(parts, script.finish_reason))
            return "complete"

        self._start_stream()
        self._wait(script.first_delay)
        for thought in script.thoughts:
            self._frame(response([{"text": thought, "thought": True}]))
            self._wait(script.delay)
        for index, piece in enumerate(pieces):
            if script.then and index == script.after:
                return self._gemini_break(script.then)
            last = index == len(pieces) - 1 and not script.then
            self._frame(response([{"text": piece}], script.finish_reason if last else None))
            if not last:
                self._wait(script.delay)
        if script.then:
            return self._gemini_break(script.then)
        self._end_stream()
        return "complete"

    def _gemini_break(self, then: str) -> str:
        if then == "error":
            self._frame({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
            self._end_stream()
        elif then == "stall":
            self._wait(self.fake.stall_seconds)
            self._end_stream()
        elif then == "garbage":
            self._chunk(b'data: {"not": json, truncated\n\n')
            self._end_stream()
        elif then == "end":
            self._end_stream()
        else:
            self._cut()
        return "broken"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json_answer(script: Script, schema: Any) -> Any:
    if script.json is not None:
        return script.json
    hints = {key: script.text for key in ("reply", "response", "answer", "text", "content", "summary")}
    return schema_instance(schema if isinstance(schema, dict) else {"type": "object"}, hints)


__all__ = ["FakeLLMServer", "Recorded", "Script"]
