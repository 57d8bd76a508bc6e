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
