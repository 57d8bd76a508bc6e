"""Input limits (RELIABILITY 15) through the real ASGI application (lia.asgi.application), with
bytes as a server hands them over: oversized bodies refused before they are read, odd
headers, and unicode edge cases that must come back intact or as a clean 422, never a 500."""

import json

import pytest
from asgiref.testing import ApplicationCommunicator

from lia.asgi import application
from lia.tests.asgi import asgi_request, http_scope, read_response

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
LIMIT = 1024 * 1024
HUNDRED_MB = str(100 * 1024 * 1024).encode()
ORIGIN = b"http://localhost:5173"


async def test_a_declared_100_mb_body_is_refused_before_any_byte_is_read():
    scope = http_scope("POST", LOGIN, [(b"content-type", b"application/json"), (b"content-length", HUNDRED_MB)])
    communicator = ApplicationCommunicator(application, scope)

    # No body is ever sent: an application that waited for it would time out here.
    status, headers, body = await read_response(communicator, wait=2)

    assert status == 413
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"error": {"message": f"Request body too large (limit {LIMIT} bytes)"}}
    assert len(headers[b"x-request-id"]) == 32
    await communicator.wait(timeout=2)


async def test_the_413_carries_the_browser_hardening_headers(settings):
    """It is answered in front of Django's middleware: it went out without them (found by a
    security audit)."""
    settings.SECURE_HSTS_SECONDS = 60
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = settings.SECURE_HSTS_PRELOAD = False
    scope = http_scope("POST", LOGIN, [(b"content-length", HUNDRED_MB)])

    status, headers, _ = await read_response(ApplicationCommunicator(application, scope), wait=2)

    assert status == 413
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"referrer-policy"] == b"same-origin"
    assert headers[b"strict-transport-security"] == b"max-age=60"


async def test_the_413_carries_cors_headers_for_an_allowed_origin():
    scope = http_scope(
        "POST", "/api/v1/chat/stream", [(b"content-length", HUNDRED_MB), (b"origin", ORIGIN), (b"x-request-id", b"r-1")]
    )

    status, headers, _ = await read_response(ApplicationCommunicator(application, scope), wait=2)

    assert status == 413
    assert headers[b"access-control-allow-origin"] == ORIGIN
    assert headers[b"access-control-allow-credentials"] == b"true"
    assert headers[b"access-control-expose-headers"] == b"X-Request-ID"
    assert headers[b"x-request-id"] == b"r-1"


async def test_the_413_has_no_cors_headers_for_another_origin():
    scope = http_scope("POST", LOGIN, [(b"content-length", HUNDRED_MB), (b"origin", b"https://evil.example")])

    status, headers, _ = await read_response(ApplicationCommunicator(application, scope), wait=2)

    assert status == 413
    assert b"access-control-allow-origin" not in headers


async def test_a_body_without_content_length_is_cut_off_at_the_limit():
    communicator = ApplicationCommunicator(
        application, http_scope("POST", LOGIN, [(b"content-type", b"application/json")])
    )
    chunk = b" " * (512 * 1024)

    for _ in range(3):  # 1.5 MB in total, the last chunk crossing the limit
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": True})
    status, _, body = await read_response(communicator, wait=2)

    assert status == 413
    assert json.loads(body)["error"]["message"].startswith("Request body too large")


async def send_in_pieces(path: str, payload: bytes, pieces: int = 4) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST `payload` as a chunked request: several body messages and no Content-Length."""
    communicator = ApplicationCommunicator(
        application, http_scope("POST", path, [(b"content-type", b"application/json")])
    )
    size = max(1, -(-len(payload) // pieces))
    parts = [payload[start : start + size] for start in range(0, len(payload), size)] or [b""]
    for index, part in enumerate(parts):
        await communicator.send_input({"type": "http.request", "body": part, "more_body": index < len(parts) - 1})
    response = await read_response(communicator)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=5)
    return response


async def test_a_body_without_content_length_is_parsed_like_one_sent_at_once():
    payload = json.dumps({"email": "ada@example.com", "username": "ada", "password": "Sup3rSecret"}).encode()

    status, _, body = await send_in_pieces(REGISTER, payload)

    assert status == 201
    assert json.loads(body)["user"]["username"] == "ada"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "nobody@example.com", "username": "nobody", "password": "short"},
        {"email": "nobody@example.com", "username": "n!", "password": "Sup3rSecret"},
        {"email": "not an email", "username": "nobody", "password": "Sup3rSecret"},
    ],
)
async def test_a_chunked_body_gets_the_same_answer_as_the_same_body_with_its_length(payload):
    raw = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]

    whole = await asgi_request(application, "POST", REGISTER, headers=headers, body=raw)
    chunked = await send_in_pieces(REGISTER, raw)

    assert whole[0] == 422
    assert (chunked[0], json.loads(chunked[2])) == (whole[0], json.loads(whole[2]))


async def test_a_chunked_request_with_an_empty_body_is_still_an_empty_body():
    status, _, body = await send_in_pieces(REGISTER, b"", pieces=1)

    assert status == 422
    assert {item["type"] for item in json.loads(body)["detail"]} == {"missing"}


async def test_requests_without_a_body_pass_through():
    status, _, body = await asgi_request(application, "GET", "/health/live")

    assert status == 200
    assert json.loads(body)["status"] == "ok"


async def test_a_body_at_the_limit_is_read_and_judged_by_the_view():
    payload = b'{"email": "nobody@example.com", "password": "' + b"x" * (LIMIT - 60) + b'"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]

    status, _, _ = await asgi_request(application, "POST", LOGIN, headers=headers, body=payload)

    assert len(payload) <= LIMIT
    assert status == 401


@pytest.mark.parametrize("length", [b"-1", b"abc", b"1e9", b"99999999999999999999999"])
async def test_a_malformed_content_length_is_a_clean_4xx(length):
    status, headers, body = await asgi_request(
        application, "POST", LOGIN, headers=[(b"content-type", b"application/json"), (b"content-length", length)]
    )

    assert 400 <= status < 500
    assert headers[b"content-type"] == b"application/json"
    assert "error" in json.loads(body)


@pytest.mark.parametrize(
    "cookie",
    ["tökén".encode(), "\u202eevil".encode(), "😀".encode() * 10, b"a" * 8192, b'"quoted"', b"x;y=z", b"\xff\xfe"],
    ids=["accents", "rtl-override", "emoji", "8kb", "quoted", "separator", "latin-1"],
)
async def test_odd_auth_cookies_are_401_never_500(cookie):
    status, headers, body = await asgi_request(
        application, "GET", "/api/v1/auth/me", headers=[(b"cookie", b"access_token=" + cookie)]
    )

    assert status == 401
    assert headers[b"www-authenticate"] == b"Bearer"
    assert "error" in json.loads(body)


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer " + "tökén".encode(),
        b"Bearer " + b"\xff" * 100,
        b"Bearer",
        b"Bearer  ",
        b"Basic YTpi",
        b"bearer " + b"a" * 8192,
    ],
)
async def test_odd_authorization_headers_are_401_never_500(authorization):
    status, headers, _ = await asgi_request(
        application, "GET", "/api/v1/auth/me", headers=[(b"authorization", authorization)]
    )

    assert status == 401
    assert headers[b"www-authenticate"] == b"Bearer"
