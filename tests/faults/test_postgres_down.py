"""PostgreSQL stopped, restarted, cut off and hung under a real daphne (RELIABILITY 26, 27, 34).

Lia talks to its own throwaway PostgreSQL here, through the production pool settings (psycopg
pool, CONN_HEALTH_CHECKS, a 3 s pool timeout, a 10 s reconnect timeout), so the test can do to
the database what an outage, a failover or a DBA does, and watch what a client sees.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from lia.testing.servers import paused, wait_until
from tests.faults.conftest import PASSWORD, bearer, chat, chat_body, register

POOL_TIMEOUT = 3.0  # DATABASE_POOL_TIMEOUT's default
DOES_NOT_HANG = POOL_TIMEOUT + 7  # generous: the machine may be busy; this is no speed target


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_clean_503(response: httpx.Response) -> None:
    """The contract's error shape with Retry-After: never a 500, a traceback or SQL."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"]["message"], str)
    for leak in ("Traceback", "psycopg", "SELECT", "postgres", "pool"):
        assert leak not in response.text.lower()


def test_postgres_stopped_gives_503_then_recovers_without_a_restart(live):
    """RELIABILITY 26: every database-backed route answers a clean 503 within about the pool
    timeout, a chat turn is refused before any provider call, the probes tell the platform,
    and once PostgreSQL is back the same Lia process serves again."""
    live.fake.script(text="Back in business.")
    lia = live.start()
    with lia.client(timeout=30) as client:
        email = "pg-outage@example.com"
        token = register(client, email)
        assert chat(client, token)[0] == 200  # the pool holds live connections now
        provider_calls = len(live.fake.requests)

        live.postgres.stop("fast")
        try:
            requests = {
                "history": lambda: client.get("/api/v1/chat/history", headers=bearer(token)),
                "me": lambda: client.get("/api/v1/auth/me", headers=bearer(token)),
                "login": lambda: client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}),
                "chat": lambda: client.post("/api/v1/chat/stream", json=chat_body(), headers=bearer(token)),
                "ready": lambda: client.get("/health/ready"),
                "health": lambda: client.get("/health"),
                "live": lambda: client.get("/health/live"),
            }
            with ThreadPoolExecutor(max_workers=len(requests)) as pool:
                answers = dict(zip(requests, pool.map(timed, requests.values()), strict=True))

            for name in ("history", "me", "login", "chat"):
                response, seconds = answers[name]
                assert_clean_503(response)
                assert seconds < DOES_NOT_HANG, name
            assert len(live.fake.requests) == provider_calls  # refused before the provider was called
            ready, seconds = answers["ready"]
            assert ready.status_code == 503
            assert ready.json()["status"] == "not_ready"
            assert seconds < DOES_NOT_HANG
            health = answers["health"][0]
            assert health.status_code == 200
            assert health.json()["status"] == "unhealthy"
            assert health.json()["services"]["database"]["status"] == "unhealthy"
            assert answers["live"][0].status_code == 200
        finally:
            live.postgres.start()

        def history_served() -> bool:
            return client.get("/api/v1/chat/history", headers=bearer(token)).status_code == 200

        wait_until(history_served, timeout=30, interval=0.25, what="Lia serving again after PostgreSQL returned")
        status, events = chat(client, token, chat_body("Are you back?"))
        assert status == 200
        assert [name for name, _ in events][-1] == "done"
        assert client.get("/health/ready").status_code == 200


def test_the_first_request_after_a_long_outage_is_served(live):
    """RELIABILITY 26 after a minute without PostgreSQL: long past the pool's reconnect timeout
    (10 s), where psycopg's own (300 s) would still be backing off between attempts, the first
    request once the database is back is served within 5 s, and every one before it got a clean
    503 without waiting out more than the pool timeout."""
    lia = live.start()
    with lia.client(timeout=30) as client:
        token = register(client)

        def history() -> httpx.Response:
            return client.get("/api/v1/chat/history", headers=bearer(token))

        assert history().status_code == 200
        live.postgres.stop("fast")
        try:
            outage_ends = time.monotonic() + 60
            while time.monotonic() < outage_ends:
                response, seconds = timed(history)
                assert_clean_503(response)
                assert seconds < DOES_NOT_HANG
                time.sleep(5)
        finally:
            live.postgres.start()
        back = time.monotonic()
        wait_until(lambda: history().status_code == 200, timeout=60, interval=0.1, what="the first success")
        assert time.monotonic() - back < 5


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_with_idle_pooled_connections(live, mode):
    """RELIABILITY 27: PostgreSQL restarts (a deploy, a crash) while the pool holds idle
    connections to the old server and nobody is asking. Every request after it is back
    succeeds, without restarting Lia."""
    lia = live.start()
    with lia.client(timeout=30) as client:
        token = register(client)
        for _ in range(5):
            assert client.get("/api/v1/chat/history", headers=bearer(token)).status_code == 200
        assert live.postgres.backends(live.application_name), "the pool keeps idle connections"

        live.postgres.restart(mode)

        after = [client.get("/api/v1/chat/history", headers=bearer(token)).status_code for _ in range(10)]
        assert after == [200] * 10
        assert chat(client, token)[0] == 200


def test_requests_across_a_restart_are_served_or_refused_cleanly(live):
    """RELIABILITY 27 with traffic: a client polling across a fast restart gets 200, or 503
    while PostgreSQL is really down, never a 500; and 200 again once it is back."""
    lia = live.start()
    with lia.client(timeout=30) as client:
        token = register(client)
        during: list[int] = []
        stop = threading.Event()

        def keep_asking() -> None:  # bounded in count and time
            with lia.client(timeout=30) as poller:
                for _ in range(500):
                    if stop.is_set():
                        return
                    during.append(poller.get("/api/v1/chat/history", headers=bearer(token)).status_code)
                    time.sleep(0.05)

        polling = threading.Thread(target=keep_asking)
        polling.start()
        try:
            time.sleep(0.3)
            live.postgres.restart("fast")
            time.sleep(0.3)
        finally:
            stop.set()
            polling.join(timeout=60)

        after = [client.get("/api/v1/chat/history", headers=bearer(token)).status_code for _ in range(10)]
    assert during
    assert set(during) <= {200, 503}, during
    assert after == [200] * 10


def test_terminated_backends_cost_no_failed_request(live):
    """RELIABILITY 27, variant: pg_terminate_backend() on every connection of the app (an
    idle-session killer, a failover tool). The pool's health check replaces them unseen."""
    lia = live.start()
    with lia.client(timeout=30) as client:
        token = register(client)
        for _ in range(5):
            assert client.get("/api/v1/chat/history", headers=bearer(token)).status_code == 200

        assert live.postgres.terminate_backends(live.application_name) >= 1

        statuses = [client.get("/api/v1/chat/history", headers=bearer(token)).status_code for _ in range(10)]
        assert statuses == [200] * 10
        assert chat(client, token)[0] == 200


def test_health_probes_are_bounded_when_the_dependencies_hang(live, redis_server):
    """RELIABILITY 34: with PostgreSQL and Redis frozen (SIGSTOP: connections are accepted and
    nothing answers), liveness, which does no I/O, answers while a readiness probe is still
    waiting on the database; readiness answers 503 when its timeout (HEALTH_CHECK_TIMEOUT, 2 s
    here) runs out instead of hanging, and /health says unhealthy the same way."""
    timeout = 2
    lia = live.start(redis=redis_server, HEALTH_CHECK_TIMEOUT=timeout)
    with lia.client(timeout=30) as client, lia.client(timeout=30) as prober:
        assert client.get("/health/ready").status_code == 200
        with paused(live.postgres), paused(redis_server), ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(timed, lambda: prober.get("/health/ready"))
            time.sleep(0.2)
            live_probe = client.get("/health/live")
            answered_first = not pending.done()
            ready, ready_seconds = pending.result()
            health, health_seconds = timed(lambda: client.get("/health"))

        assert live_probe.status_code == 200
        assert answered_first
        assert ready.status_code == 503
        assert ready.json()["reason"] == "database_timeout"
        assert ready.json()["message"] == f"Database health check timed out after {timeout}s"
        # At its timeout, not after both probes' timeouts one after the other (1.5 s of slack for a
        # busy machine: "does not hang", no speed target).
        assert ready_seconds < timeout + 1.5
        assert health.status_code == 200
        assert health.json()["status"] == "unhealthy"
        assert health.json()["services"]["cache"]["status"] == "degraded"
        assert health_seconds < timeout + 1.5
        # Unfrozen, the same process is ready again.
        wait_until(lambda: client.get("/health/ready").status_code == 200, timeout=15, what="ready again")
