"""Password hashes under a burst of sign-ins (accounts.hashers.password_hashing): at most
PASSWORD_HASH_CONCURRENCY at a time per process, and none holding a pooled database connection.

Found by an audit under `manage.py serve` (2 workers, PostgreSQL pools of 10): 40 logins at once
held a connection each while their Argon2 hashes shared the CPU; 20 got 503 after the pool's
3 s timeout, and so did another user's history request."""

import json
import threading
import time

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher, make_password
from django.db import connection, connections

from accounts.hashers import GatedHashing
from accounts.models import User
from conftest import PASSWORD

HASHER = "accounts.tests.test_password_hashing.RecordingHasher"


class Record:
    lock = threading.Lock()
    active = 0
    most = 0
    holding_connection: list[bool] = []

    @classmethod
    def reset(cls) -> None:
        cls.active = cls.most = 0
        cls.holding_connection = []


class _SlowMD5(MD5PasswordHasher):
    """A hash that takes a while, noting how many run at once and whether its thread holds a
    database connection meanwhile."""

    def encode(self, password: str, salt: str) -> str:
        with Record.lock:
            Record.active += 1
            Record.most = max(Record.most, Record.active)
            Record.holding_connection.append(connection.connection is not None)
        time.sleep(0.05)
        with Record.lock:
            Record.active -= 1
        return super().encode(password, salt)


class RecordingHasher(GatedHashing, _SlowMD5):
    pass


@pytest.fixture
def recorded(settings):
    settings.PASSWORD_HASHERS = [HASHER]
    Record.reset()
    return Record


def test_hashes_run_one_at_a_time_per_process(recorded):
    threads = [threading.Thread(target=make_password, args=(PASSWORD,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(recorded.holding_connection) == 6
    assert recorded.most == 1


def _pooled() -> bool:
    return getattr(connection, "pool", None) is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("not _pooled()", reason="the connection pool is PostgreSQL's")
def test_a_login_and_a_sign_up_hash_holding_no_pooled_connection(recorded, web):
    User.objects.create_user(email="ada@example.com", username="ada", password=PASSWORD)
    recorded.reset()
    try:
        login = web.post(
            "/api/v1/auth/login",
            json.dumps({"email": "ada@example.com", "password": PASSWORD}),
            content_type="application/json",
        )
        register = web.post(
            "/api/v1/auth/register",
            json.dumps({"email": "bob@example.com", "username": "bob", "password": PASSWORD}),
            content_type="application/json",
        )
    finally:
        connections.close_all()
    assert login.status_code == 200, login.content
    assert register.status_code == 201, register.content
    assert recorded.holding_connection == [False, False]
    assert User.objects.get(email="bob@example.com").check_password(PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_that_waits_too_long_for_its_hash_is_503_with_retry_after(recorded, web, settings, monkeypatch):
    """Found by a review: the wait for a turn to hash had no bound, so a burst queued a thread
    each, and hashed for clients long gone. Now it is a 503 the client can retry, and not a
    failed guess against the account's lock."""
    from accounts import hashers

    User.objects.create_user(email="ada@example.com", username="ada", password=PASSWORD)
    settings.PASSWORD_HASH_WAIT_SECONDS = 0.05
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 2
    monkeypatch.setattr(hashers, "_hashing_slots", threading.BoundedSemaphore(1))
    hashers._hashing_slots.acquire()  # another sign-in is hashing
    try:
        busy = [
            web.post(
                "/api/v1/auth/login",
                json.dumps({"email": "ada@example.com", "password": PASSWORD}),
                content_type="application/json",
            )
            for _ in range(3)
        ]
    finally:
        hashers._hashing_slots.release()
    served = web.post(
        "/api/v1/auth/login",
        json.dumps({"email": "ada@example.com", "password": PASSWORD}),
        content_type="application/json",
    )

    assert {response.status_code for response in busy} == {503}
    assert busy[0].json() == {
        "error": {"message": "The server is busy signing people in. Please try again in a moment."}
    }
    assert busy[0]["Retry-After"] == "2"
    assert served.status_code == 200  # the waits didn't count against the account
