"""The ASGI path: the same stack daphne serves, async middleware included."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


async def test_authenticated_request_through_asgi(async_web, alice):
    response = await async_web.get("/api/v1/auth/me", headers={**alice.bearer, "X-Request-ID": "asgi-1"})

    assert response.status_code == 200
    assert response.json()["id"] == alice.user.pk
    assert response["X-Request-ID"] == "asgi-1"
    assert response["Access-Control-Allow-Origin"] == "http://localhost:5173"


async def test_errors_through_asgi(async_web):
    unauthorized = await async_web.get("/api/v1/auth/me")
    missing = await async_web.get("/nope")
    forbidden = await async_web.post("/api/v1/auth/logout", headers={"Origin": "https://evil.example"})

    assert unauthorized.status_code == 401
    assert missing.json() == {"error": {"message": "Not Found"}}
    assert forbidden.status_code == 403


async def test_health_through_asgi(async_web):
    response = await async_web.get("/health")

    assert response.json()["services"]["database"]["status"] == "healthy"


@pytest.mark.parametrize(
    "path", ["conversations/chat.js", "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"]
)
async def test_static_files_are_served_without_collectstatic(settings, tmp_path, path):
    """/chat and the API docs were blank pages under `manage.py serve` where `collectstatic`
    (the Docker image's step) hadn't run: every asset a JSON 404 (found by an audit)."""
    from asgiref.testing import ApplicationCommunicator

    from lia.asgi import with_static_files

    settings.STATIC_ROOT = tmp_path / "never-collected"

    async def django(scope, receive, send):
        raise AssertionError("a static file reached Django")

    scope = {"type": "http", "method": "GET", "path": f"/static/{path}", "headers": [], "query_string": b""}
    communicator = ApplicationCommunicator(with_static_files(django), scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=5)

    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"].startswith(b"text/javascript")


async def test_static_files_carry_the_browser_hardening_headers(settings, tmp_path):
    """Static files are served in front of Django's middleware, so they went out without the
    headers every other response has: no nosniff, no frame or referrer policy, no HSTS (found
    by a security audit against `manage.py serve`)."""
    from asgiref.testing import ApplicationCommunicator

    from lia.asgi import with_static_files

    settings.STATIC_ROOT = tmp_path / "never-collected"
    settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, settings.SECURE_HSTS_PRELOAD = (
        3600,
        True,
        False,
    )

    async def django(scope, receive, send):
        raise AssertionError("a static file reached Django")

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/static/conversations/chat.js",
        "headers": [],
        "query_string": b"",
    }
    communicator = ApplicationCommunicator(with_static_files(django), scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    headers = dict((await communicator.receive_output(timeout=5))["headers"])

    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"referrer-policy"] == b"same-origin"
    assert headers[b"cross-origin-opener-policy"] == b"same-origin"
    assert headers[b"strict-transport-security"] == b"max-age=3600; includeSubDomains"


@pytest.mark.parametrize("path", ["/api/v1/chat/stream", "/static/conversations/chat.js", "/nope"])
async def test_a_websocket_handshake_is_refused_cleanly(path, caplog):
    """Lia serves no WebSocket: an upgrade request reached Django, which raised, so anyone could
    make each worker log an ERROR with a traceback and answer a plain-text 500 (found by a
    security audit against `manage.py serve`). The handshake is refused (403) instead."""
    from asgiref.testing import ApplicationCommunicator

    from lia.asgi import application

    scope = {"type": "websocket", "path": path, "headers": [], "query_string": b"", "subprotocols": []}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "websocket.connect"})

    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1000}
    await communicator.wait(timeout=5)
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
