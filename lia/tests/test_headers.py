"""Security headers (RELIABILITY 6, 29): what every response says to browsers and caches."""

import json

import pytest

pytestmark = pytest.mark.django_db

ORIGIN = "http://localhost:5173"


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/me", "/api/v1/chat/models", "/health/live", "/nope", "/api/v1/schema", "/api/v1/docs"]
)
def test_every_response_carries_the_browser_hardening_headers(web, alice, path):
    response = web.get(path, headers=alice.bearer)

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] in ("same-origin", "unsafe-none")
    assert "Server" not in response
    assert "X-Powered-By" not in response


def test_https_responses_carry_hsts(web, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True

    response = web.get("/health/live", secure=True)

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/auth/register", {"email": "ada@example.com", "username": "ada", "password": "Passw0rdX"}, 201),
        ("/api/v1/auth/login", {"email": "alice@example.com", "password": "Sup3rSecret"}, 200),
        ("/api/v1/auth/refresh", None, 200),
        ("/api/v1/auth/logout", None, 200),
    ],
)
def test_responses_with_a_token_or_its_cookie_are_never_cached(web, alice, path, body, status):
    if body is None:
        response = web.post(path, headers=alice.bearer)
    else:
        response = web.post(path, json.dumps(body), content_type="application/json")

    assert response.status_code == status
    assert response["Cache-Control"] == "no-store"


def test_the_stream_says_no_cache_and_no_buffering(web, alice):
    response = web.post(
        "/api/v1/chat/stream",
        json.dumps({"message": "Hi", "provider": "offline"}),
        content_type="application/json",
        headers=alice.bearer,
    )

    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert response["Connection"] == "keep-alive"
    assert "Content-Encoding" not in response


@pytest.mark.parametrize("credentials", ["bearer", "cookie"])
def test_a_users_own_data_is_never_cached(web, alice, credentials):
    """Found by a security audit: /me (the email), the history and a conversation's messages went
    out with no Cache-Control and no Vary on the cookie, so a shared cache (a CDN told to cache
    the API, a proxy) could keep one user's answer and give it to the next caller."""
    if credentials == "cookie":
        web.cookies["access_token"] = alice.token
        headers = {}
    else:
        headers = alice.bearer
    from conversations.models import Conversation

    conversation_id = Conversation.objects.create(user=alice.user, title="Mine").pk

    for path in ("/api/v1/auth/me", "/api/v1/chat/history", f"/api/v1/chat/conversation/{conversation_id}"):
        response = web.get(path, headers=headers)
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store", path


def test_public_answers_keep_their_own_caching(web):
    assert "Cache-Control" not in web.get("/api/v1/chat/models")
