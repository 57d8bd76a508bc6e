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
