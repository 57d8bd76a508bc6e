"""Redis stopped (connections refused) or hung (SIGSTOP: connections accepted, nothing answers),
under a real daphne (RELIABILITY 25, 2).

Redis is only the cache and the store of the rate-limit windows, so losing it must cost
nothing a user notices: no 5xx, limits still enforced (counted in each process, neither "no
limit" nor "everything blocked"), revoked tokens still revoked (their denylist is in the
database), /health saying "degraded". When Redis is back the limits are counted there again,
after the limiter's cool-down (shortened here through RATE_LIMIT_REDIS_RETRY_SECONDS).
"""

import time
from collections.abc import Callable

import httpx
import pytest

from lia.testing.servers import RedisServer
from tests.faults.conftest import PASSWORD, bearer, chat, chat_body, register

COOL_DOWN_SECONDS = 2.0
AUTH_LIMIT = 10


def break_redis(redis_server: RedisServer, how: str) -> Callable[[], None]:
    """Break Redis as `how` says; returns what brings it back (on the same port)."""
    if how == "refused":
        redis_server.stop()
        return redis_server.start
    redis_server.pause()
    return redis_server.resume


def login(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


@pytest.mark.parametrize("how", ["refused", "hung"])
def test_lia_keeps_serving_and_limiting_without_redis(live, redis_server, how):
    live.fake.script(text="Still here without Redis.")
    lia = live.start(redis=redis_server, RATE_LIMIT_REDIS_RETRY_SECONDS=COOL_DOWN_SECONDS)
    statuses: list[int] = []
    hooks = {"response": [lambda response: statuses.append(response.status_code)]}
    with lia.client(timeout=10, event_hooks=hooks) as client:  # 10 s: "does not hang", no speed target
        email = "redis-outage@example.com"
        token = register(client, email)
        rate_limit_key = redis_server.client().keys(f"{live.cache_prefix}:*ratelimit:auth:*")
        assert rate_limit_key, "with Redis up, the auth limit is counted in Redis"

        bring_back = break_redis(redis_server, how)
        try:
            # Everything a user does still works.
            assert login(client, email).status_code == 200
            assert client.get("/api/v1/chat/history", headers=bearer(token)).status_code == 200
            status, events = chat(client, token, chat_body("Are you there?"))
            assert status == 200
            assert [name for name, _ in events][-2:] == ["sentiment", "done"]
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            assert health.json()["services"]["cache"]["status"] == "degraded"
            assert health.json()["services"]["database"]["status"] == "healthy"

            # Logout revocation holds: its denylist is in the database.
            session = login(client, email).json()["access_token"]
            assert client.post("/api/v1/auth/logout", headers=bearer(session)).status_code == 200
            assert client.get("/api/v1/auth/me", headers=bearer(session)).status_code == 401
            assert client.post("/api/v1/auth/refresh", headers=bearer(session)).status_code == 401

            # Not fail-open, not fail-closed: this process counted the 2 logins above, so 8
            # more attempts are answered, and the 11th of the minute is refused.
            wrong = [login(client, email, "Wrong1234").status_code for _ in range(AUTH_LIMIT - 2)]
            assert wrong == [401] * (AUTH_LIMIT - 2)
            refused = login(client, email)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["error"]["details"]["retry_after"] >= 1
        finally:
            bring_back()

        # Redis is back: after the cool-down the limiter counts there again (this process's
        # own window, which is full, would refuse the next attempts).
        redis = redis_server.client()
        time.sleep(COOL_DOWN_SECONDS + 0.5)
        redis.flushall()  # whatever the frozen Redis ran when it woke up
        back = [login(client, email, "Wrong1234").status_code for _ in range(3)]
        assert back == [401, 401, 401]
        (key,) = redis.keys(f"{live.cache_prefix}:*ratelimit:auth:*")
        assert redis.zcard(key) == 3

    assert all(status < 500 for status in statuses), statuses
