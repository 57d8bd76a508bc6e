"""Failures and security events in the logs (RELIABILITY 30, 32).

A forced exception in a view, a serializer, a middleware or the chat stream's generator gives the
client the contract's 500 (or an SSE `error` event) with no trace of the internals, and the logs
the traceback under the same request id the client sees. Security events (logins, logouts,
refused tokens, someone else's conversation, Origin and rate-limit refusals) are each one
structured line with the user id when known, the client IP and the request id. No password,
token, cookie, Authorization header or provider key ever reaches the logs.
"""

import io
import json
import logging
from typing import Any

import pytest
import structlog
from asgiref.sync import sync_to_async
from django.test import Client

from conftest import PASSWORD, WEB_ORIGIN
from conversations.models import Conversation
from lia.logging import build_logging_config

INTERNALS = ("Traceback", "RuntimeError", "secret internals", ".py", "SELECT", "password=hunter2")


class ExplodingMiddleware:
    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if request.path == "/api/v1/auth/me":
            raise RuntimeError("secret internals: password=hunter2")
        return self.get_response(request)


def records(caplog, event: str) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == event]


def rendered(caplog) -> str:
    """Everything the log handlers would write, tracebacks included."""
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        lines.append(str(record.msg))
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


def assert_no_internals(body: str) -> None:
    for fragment in INTERNALS:
        assert fragment not in body


# --- forced exceptions -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_exception_in_a_view_is_a_500_whose_id_is_in_the_log(web, alice, json_log, monkeypatch):
    from conversations import apis

    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(apis, "conversation_list", explode)

    response = web.get("/api/v1/chat/history", headers=alice.bearer)

    assert_a_500_logged_with_its_id(response, json_log, "request.unhandled_error")


@pytest.mark.django_db
def test_an_exception_in_a_serializer_is_a_500_whose_id_is_in_the_log(web, alice, json_log, monkeypatch):
    from conversations.apis import RenameApi

    def explode(self: Any, value: str) -> str:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(RenameApi.InputSerializer, "validate_title", explode, raising=False)
    conversation = Conversation.objects.create(user=alice.user, title="A chat")

    response = web.patch(
        f"/api/v1/chat/conversation/{conversation.pk}/rename",
        json.dumps({"title": "New"}),
        content_type="application/json",
        headers=alice.bearer,
    )

    assert_a_500_logged_with_its_id(response, json_log, "request.unhandled_error")


@pytest.mark.django_db
def test_an_exception_in_a_middleware_is_a_500_whose_id_is_in_the_log(alice, json_log, settings):
    web = Client(raise_request_exception=False, headers={"Origin": WEB_ORIGIN})
    after_cors = settings.MIDDLEWARE.index("corsheaders.middleware.CorsMiddleware") + 1
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:after_cors],
        f"{__name__}.ExplodingMiddleware",
        *settings.MIDDLEWARE[after_cors:],
    ]

    response = web.get("/api/v1/auth/me", headers=alice.bearer)

    assert response["Access-Control-Allow-Origin"] == WEB_ORIGIN  # the browser may read it
    assert_a_500_logged_with_its_id(response, json_log, "Internal Server Error: /api/v1/auth/me")


def assert_a_500_logged_with_its_id(response: Any, json_log: Any, event: str) -> None:
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    body = response.json()
    request_id = body["error"]["details"]["request_id"]
    assert body == {
        "error": {
            "message": "An internal error occurred. Please try again later.",
            "details": {"request_id": request_id},
        }
    }
    assert response["X-Request-ID"] == request_id
    assert_no_internals(response.content.decode())
    # What the log handler wrote (JSON lines on stderr): the traceback is there, and only there.
    logged = [line for line in json_log() if line["event"] == event]
    assert len(logged) == 1
    assert logged[0]["request_id"] == request_id
    assert "RuntimeError: secret internals" in logged[0]["exception"]


@pytest.fixture
def json_log() -> Any:
    """The JSON lines Lia's log configuration writes, formatted as they are logged."""
    config = build_logging_config(log_format="json", level="INFO")["formatters"]["structlog"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(**{k: v for k, v in config.items() if k != "()"}))
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


@pytest.mark.django_db(transaction=True)
async def test_an_exception_inside_the_stream_is_an_error_event_whose_id_is_in_the_log(
    async_web, alice, caplog, scripted
):
    scripted.steps = [("text", "Hel"), ("crash", None)]
    response = await async_web.post(
        "/api/v1/chat/stream",
        json.dumps({"message": "Hi", "provider": "scripted", "model": "m", "sentiment_method": "local"}),
        content_type="application/json",
        headers=alice.bearer,
    )
    raw = b"".join([chunk async for chunk in response.streaming_content]).decode()

    assert response.status_code == 200
    last = raw.strip().split("\n\n")[-1]
    assert "event: error" in last
    assert json.loads(last.split("data: ", 1)[1]) == {
        "message": "An error occurred processing your request.",
        "request_id": response["X-Request-ID"],
    }
    assert_no_internals(raw)
    failed = records(caplog, "chat.turn.failed")
    assert len(failed) == 1
    assert failed[0]["request_id"] == response["X-Request-ID"]
    assert failed[0]["conversation_id"] == json.loads(raw.split("data: ", 1)[1].split("\n")[0])["conversation_id"]


# --- security events -----------------------------------------------------------------------------------


def post(client: Any, path: str, body: Any = None, **headers: str) -> Any:
    if body is None:
        return client.post(path, headers=headers)
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


def the_event(caplog: Any, event: str, **expected: Any) -> dict[str, Any]:
    found = records(caplog, event)
    assert len(found) == 1, f"{event}: {len(found)} lines"
    line = found[0]
    assert line["client_ip"] == "127.0.0.1"
    assert len(line["request_id"]) == 32
    for key, value in expected.items():
        assert line.get(key) == value, (event, key, line)
    return line


@pytest.mark.django_db
def test_each_security_event_is_one_structured_line(web, alice, bob, caplog, settings):
    caplog.set_level(logging.INFO)
    user_id = alice.user.pk

    post(web, "/api/v1/auth/login", {"email": "alice@example.com", "password": PASSWORD})
    the_event(caplog, "auth.login", user_id=user_id)
    caplog.clear()

    post(web, "/api/v1/auth/login", {"email": "alice@example.com", "password": "Wr0ngGuess"})
    assert "user_id" not in the_event(caplog, "auth.login_failed")
    caplog.clear()

    web.cookies.clear()
    token = alice.token
    post(web, "/api/v1/auth/refresh", Authorization=f"Bearer {token}")
    web.cookies.clear()  # the new token's cookie would be used instead of the header
    caplog.clear()
    post(web, "/api/v1/auth/refresh", Authorization=f"Bearer {token}")  # spent: refused
    the_event(caplog, "auth.rejected", path="/api/v1/auth/refresh", reason="Invalid or expired token")
    caplog.clear()

    conversation = Conversation.objects.create(user=alice.user, title="Private")
    web.get(f"/api/v1/chat/conversation/{conversation.pk}", headers=bob.bearer)
    the_event(caplog, "security.conversation_denied", user_id=bob.user.pk, conversation_id=str(conversation.pk))
    caplog.clear()

    post(web, "/api/v1/auth/logout", Origin="https://evil.example")
    the_event(caplog, "security.origin_rejected", origin="https://evil.example")
    caplog.clear()

    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 1
    post(web, "/api/v1/chat/stream", {"message": "Hi", "provider": "offline"}, **bob.bearer)
    caplog.clear()
    post(web, "/api/v1/chat/stream", {"message": "Hi", "provider": "offline"}, **bob.bearer)
    the_event(caplog, "ratelimit.rejected", user_id=bob.user.pk, scope="chat")
    caplog.clear()

    post(web, "/api/v1/auth/logout", **bob.bearer)
    the_event(caplog, "auth.logout", user_id=bob.user.pk, revoked=True)


@pytest.mark.django_db
def test_a_locked_account_is_one_line(web, alice, caplog, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 1
    post(web, "/api/v1/auth/login", {"email": "alice@example.com", "password": "Wr0ngGuess"})
    caplog.clear()
    caplog.set_level(logging.INFO)

    response = post(web, "/api/v1/auth/login", {"email": "alice@example.com", "password": "Wr0ngGuess"})

    assert response.status_code == 429
    the_event(caplog, "security.login_locked")


# --- no secrets ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_no_secret_reaches_the_logs_across_the_auth_and_chat_flow(async_web, caplog, fake_llm_providers):
    caplog.set_level(logging.DEBUG)
    password = "Unl1kely-Passw0rd"
    # Nor the words of a conversation: the user's message, the reply, its thoughts.
    text, reply, thought = "Unlikely message text", "Unlikely reply text", "Unlikely thought"
    fake_llm_providers.script(text=reply, thoughts=[thought])
    secrets: list[str] = [password, "Wr0ng-Passw0rd", "g-fake", "sk-fake", text, reply, thought]

    async def call(method: str, path: str, body: Any = None, **headers: str) -> Any:
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        response = await getattr(async_web, method)(path, **kwargs)
        if response.streaming:
            b"".join([chunk async for chunk in response.streaming_content])
        return response

    registered = await call(
        "post", "/api/v1/auth/register", {"email": "ada@x.io", "username": "ada", "password": password}
    )
    token = registered.json()["access_token"]
    await call("post", "/api/v1/auth/login", {"email": "ada@x.io", "password": "Wr0ng-Passw0rd"})
    logged_in = await call("post", "/api/v1/auth/login", {"email": "ada@x.io", "password": password})
    cookie = logged_in.cookies["access_token"].value
    bearer = {"Authorization": f"Bearer {token}"}
    await call("get", "/api/v1/auth/me", Cookie=f"access_token={cookie}")
    for provider, model in (("gemini", "gemini-2.5-flash"), ("openai", "gpt-4o"), ("openai", "gpt-4o-401")):
        await call("post", "/api/v1/chat/stream", {"message": text, "provider": provider, "model": model}, **bearer)
    refreshed = await call("post", "/api/v1/auth/refresh", **bearer)
    await call("post", "/api/v1/auth/refresh", **bearer)  # spent
    await call("get", "/api/v1/auth/me", Authorization="Bearer not.a.token")
    await call("post", "/api/v1/auth/logout", Authorization=f"Bearer {refreshed.json()['access_token']}")

    assert len(fake_llm_providers.requests) >= 3
    logged = await sync_to_async(rendered)(caplog)
    assert "auth.login" in logged
    assert "chat.turn.finished" in logged
    tokens = [token, cookie, refreshed.json()["access_token"]]
    for secret in [*secrets, *tokens, *(t.split(".")[1] for t in tokens), *(t.split(".")[2] for t in tokens)]:
        assert secret not in logged, secret
    assert "Bearer " not in logged


@pytest.mark.django_db
def test_a_refused_host_is_one_warning_line_without_a_traceback(json_log, settings):
    settings.DEBUG = False

    response = Client().get("/api/v1/chat/models", HTTP_HOST="scanner.invalid")

    assert response.status_code == 400
    [line] = [line for line in json_log() if "scanner.invalid" in line["event"]]
    assert line["level"] == "warning"
    assert "exception" not in line
