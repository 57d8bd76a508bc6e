"""The per-IP auth limit of CONTRACT §4.5: register and login share one sliding 60 s window."""

import json
import logging
import socket

import pytest
import time_machine
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"


def login(client, **extra):
    return client.post(
        LOGIN,
        data=json.dumps({"email": "nobody@example.com", "password": "Wrong1234"}),
        content_type="application/json",
        **extra,
    )


def test_eleventh_attempt_in_a_minute_is_429_with_the_real_wait(web):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        statuses = [login(web).status_code for _ in range(10)]
        clock.shift(20)
        response = login(web)

    assert statuses == [401] * 10
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["message"] == "Rate limit exceeded. Please try again later."
    assert body["error"]["details"]["retry_after"] == 40
    assert response["Retry-After"] == "40"


def test_register_and_login_share_the_counter(web):
    for index in range(5):
        body = {"email": f"u{index}@example.com", "username": f"user{index}", "password": "Passw0rdX"}
        assert web.post(REGISTER, json.dumps(body), content_type="application/json").status_code == 201
    for _ in range(5):
        assert login(web).status_code == 401

    assert login(web).status_code == 429


def test_the_window_slides(web):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        login(web)
        clock.shift(30)
        for _ in range(9):
            login(web)
        clock.shift(29)  # t+59: all ten still inside the window
        assert login(web).status_code == 429
        clock.shift(2)  # t+61: the first attempt left the window, but the rejected one counts
        assert login(web).status_code == 429
        clock.shift(30)  # t+91: the nine from t+30 have left
        assert login(web).status_code == 401


def test_validation_failures_do_not_use_a_slot(web):
    for _ in range(15):
        bad = web.post(LOGIN, json.dumps({"email": "nope"}), content_type="application/json")
        assert bad.status_code == 422

    assert login(web).status_code == 401


def test_limits_are_per_client_ip(web):
    for _ in range(10):
        login(web, REMOTE_ADDR="10.0.0.1")

    assert login(web, REMOTE_ADDR="10.0.0.1").status_code == 429
    assert login(web, REMOTE_ADDR="10.0.0.2").status_code == 401


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(web, settings):
    for index in range(10):
        login(web, HTTP_X_FORWARDED_FOR=f"203.0.113.{index}")
    assert login(web, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429

    settings.TRUSTED_PROXY_COUNT = 1
    assert login(web, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 401


def test_disabled_limits_never_reject(web, settings):
    settings.RATE_LIMIT_ENABLED = False

    assert {login(web).status_code for _ in range(15)} == {401}


@pytest.fixture
def redis_refused(settings) -> None:
    """The cache is Redis, and nothing listens where it should be: connections are refused.
    (tests/faults/test_redis_down.py does the same to a real Redis under daphne, hung too.)"""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }


@pytest.mark.usefixtures("redis_refused")
def test_without_redis_the_limit_is_counted_in_the_process(web):
    """Not fail-open (no limit) and not fail-closed (everything refused), and never a 500."""
    statuses = [login(web).status_code for _ in range(10)]

    assert statuses == [401] * 10
    assert login(web).status_code == 429


@pytest.mark.usefixtures("redis_refused")
def test_redis_is_tried_again_after_the_cool_down(web, settings, caplog):
    settings.RATE_LIMIT_REDIS_RETRY_SECONDS = 5
    caplog.set_level(logging.WARNING, logger="lia.ratelimit")

    def redis_tries() -> int:
        return sum(
            1 for r in caplog.records if r.name == "lia.ratelimit" and r.msg["event"] == "ratelimit.redis_unavailable"
        )

    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(3):
            login(web)
        clock.shift(4)
        login(web)
        assert redis_tries() == 1  # within the cool-down, Redis is not asked
        clock.shift(2)
        login(web)
        assert redis_tries() == 2


def test_a_limit_of_zero_refuses_instead_of_crashing(web, settings):
    """A misconfiguration (the lia.E005 check reports it at start-up) must not be a 500."""
    settings.RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = 0

    response = login(web)

    assert response.status_code == 429
    assert response["Retry-After"] == "60"
