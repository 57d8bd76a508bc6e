"""Brute force (RELIABILITY 11): failed logins are limited per account, whichever IP they come
from; register shares the per-IP auth limit; X-Forwarded-For can't reset a counter."""

import json
import threading
import time

import pytest
import time_machine
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts import apis
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"


WRONG_PASSWORD = "Wr0ngGuess"


def login(client, email: str = "alice@example.com", password: str = WRONG_PASSWORD, ip: str = "10.0.0.1"):
    body = json.dumps({"email": email, "password": password})
    return client.post(LOGIN, body, content_type="application/json", REMOTE_ADDR=ip)


def guesses(client, count: int, email: str = "alice@example.com", start: int = 0) -> list[int]:
    # A different client IP every time: the per-IP limit never sees more than one attempt.
    return [
        login(client, email, ip=f"10.1.{(start + n) // 250}.{(start + n) % 250 + 1}").status_code for n in range(count)
    ]


def test_the_21st_failed_login_for_an_account_is_429_from_any_ip(web, alice):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        failures = guesses(web, 20)
        clock.shift(600)
        blocked = login(web, ip="192.0.2.200")

    assert failures == [401] * 20
    assert blocked.status_code == 429
    assert blocked.json() == {
        "error": {"message": "Rate limit exceeded. Please try again later.", "details": {"retry_after": 3000}}
    }
    assert blocked["Retry-After"] == "3000"


def test_a_locked_account_refuses_even_the_right_password(web, alice):
    guesses(web, 20)

    assert login(web, password=PASSWORD, ip="192.0.2.7").status_code == 429


def test_the_lock_lifts_as_failures_leave_the_hour(web, alice):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        guesses(web, 20)
        clock.shift(3601)

        assert login(web, password=PASSWORD, ip="192.0.2.7").status_code == 200


def test_refused_attempts_do_not_extend_the_lock(web, alice):
    """At most 20 password guesses an hour: refused attempts check no password and don't count."""
    with time_machine.travel(timezone.now(), tick=False) as clock:
        guesses(web, 20)
        for minute in range(59):
            clock.shift(60)
            assert login(web, ip=f"192.0.2.{minute + 1}").status_code == 429
        clock.shift(61)

        assert login(web, password=PASSWORD, ip="192.0.2.99").status_code == 200


def test_other_accounts_are_unaffected(web, alice, bob):
    guesses(web, 20)

    assert login(web, "bob@example.com", PASSWORD, ip="192.0.2.8").status_code == 200


def test_successful_logins_do_not_count(web, alice):
    for n in range(25):
        assert login(web, password=PASSWORD, ip=f"10.2.0.{n + 1}").status_code == 200

    assert login(web, ip="10.2.1.1").status_code == 401


def test_unknown_emails_are_limited_the_same_way(web):
    """An attacker can't tell a real account from a missing one by when it gets locked."""
    failures = guesses(web, 20, email="nobody@example.com")

    assert failures == [401] * 20
    assert login(web, "nobody@example.com", ip="192.0.2.9").status_code == 429


def test_the_account_key_ignores_email_case(web, alice):
    guesses(web, 10, email="alice@example.com")
    guesses(web, 10, email="ALICE@Example.COM", start=10)

    assert login(web, "Alice@example.com", PASSWORD, ip="192.0.2.10").status_code == 429


def test_the_limit_follows_its_setting(web, alice, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 3

    assert guesses(web, 3) == [401] * 3
    assert login(web, ip="192.0.2.11").status_code == 429


def test_disabled_limits_lock_nobody(web, alice, settings):
    settings.RATE_LIMIT_ENABLED = False

    assert set(guesses(web, 30)) == {401}
    assert login(web, password=PASSWORD).status_code == 200


def admin_login(email: str = "admin@example.com", password: str = WRONG_PASSWORD, ip: str = "10.0.0.1", **kwargs):
    return Client(**kwargs).post("/admin/login/", {"username": email, "password": password}, REMOTE_ADDR=ip)


def admin_guesses(count: int, email: str = "admin@example.com", start: int = 0) -> list[int]:
    ips = [f"10.3.{(start + n) // 250}.{(start + n) % 250 + 1}" for n in range(count)]
    return [admin_login(email, ip=ip).status_code for ip in ips]


def test_the_admin_login_counts_failures_towards_the_accounts_lock(web, admin_user):
    """The admin's form is no way around the lock (found by an audit: 80 failed admin logins
    on a locked account, then the right password signed in)."""
    assert admin_guesses(20) == [200] * 20  # the form again, with its error

    assert admin_login(password=PASSWORD, ip="192.0.2.30").status_code == 429
    assert login(web, "admin@example.com", PASSWORD, ip="192.0.2.31").status_code == 429


def test_an_account_locked_through_the_api_is_locked_in_the_admin(web, admin_user):
    assert guesses(web, 20, email="admin@example.com") == [401] * 20

    response = admin_login(password=PASSWORD, ip="192.0.2.32")

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "sessionid" not in response.cookies


def test_admin_sign_ins_and_refused_forms_are_not_counted(admin_user, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 3
    admin_guesses(2)
    for n in range(5):
        assert admin_login(password=PASSWORD, ip=f"192.0.2.{40 + n}").status_code == 302
        # Refused by the CSRF check before any password is looked at.
        assert admin_login(ip=f"192.0.2.{50 + n}", enforce_csrf_checks=True).status_code == 403
        assert admin_login(password="", ip=f"192.0.2.{60 + n}").status_code == 200  # nothing to check

    assert admin_guesses(2, start=10) == [200, 429]


def test_an_ipv6_client_is_limited_by_its_64(web):
    """A client with one IPv6 address has its whole /64 (found by an audit: 15 registrations from
    one /64, each from its own address, against a limit of 10); another /64 has its own count,
    and an IPv4-mapped address counts as the IPv4 one."""

    def register(n: int, ip: str) -> int:
        body = {"email": f"v6-{n}@example.com", "username": f"vsix{n}", "password": "Passw0rdX"}
        return web.post(REGISTER, json.dumps(body), content_type="application/json", REMOTE_ADDR=ip).status_code

    same_network = [register(n, f"2001:db8:1:2::{n + 1:x}") for n in range(11)]
    elsewhere = register(20, "2001:db8:1:3::1")
    mapped = [register(30 + n, "::ffff:192.0.2.99" if n % 2 else "192.0.2.99") for n in range(11)]

    assert same_network == [201] * 10 + [429]
    assert elsewhere == 201
    assert mapped == [201] * 10 + [429]


def test_registration_is_limited_per_ip(web):
    statuses = []
    for n in range(11):
        body = {"email": f"new{n}@example.com", "username": f"new{n}", "password": "Passw0rdX"}
        statuses.append(web.post(REGISTER, json.dumps(body), content_type="application/json").status_code)

    assert statuses == [201] * 10 + [429]


def test_a_spoofed_forwarded_for_does_not_reset_the_per_ip_counter(web):
    for n in range(10):
        login(web, email=f"u{n}@example.com", ip="10.9.9.9")
    spoofed = web.post(
        LOGIN,
        json.dumps({"email": "z@example.com", "password": "x"}),
        content_type="application/json",
        REMOTE_ADDR="10.9.9.9",
        HTTP_X_FORWARDED_FOR="203.0.113.77",
    )

    assert spoofed.status_code == 429


@pytest.mark.django_db(transaction=True)
def test_concurrent_guesses_check_at_most_the_limits_worth_of_passwords(monkeypatch, settings):
    """Each login is counted as a failure before its password is checked, atomically: guesses
    sent together, all checking their passwords at once, can't all pass a look made before any
    of them failed (found by an audit: 150 concurrent guesses all had their passwords checked).
    (Few enough to fit the tests' smallest database pool.)"""
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 3
    checked, gate, lock = [], threading.Event(), threading.Lock()
    check_password = apis.user_login

    def held_check(**kwargs: object) -> object:
        with lock:
            checked.append(1)
        gate.wait(10)  # every admitted guess is mid-check together
        return check_password(**kwargs)

    monkeypatch.setattr(apis, "user_login", held_check)
    statuses: list[int] = []

    def guess(n: int) -> None:
        try:
            statuses.append(login(Client(), "nobody@example.com", ip=f"10.2.0.{n + 1}").status_code)
        finally:
            connections.close_all()  # the test client leaves its thread's connection open

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(checked) + len(statuses) < len(threads) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(10)

    assert len(checked) == 3
    assert sorted(statuses) == [401] * 3 + [429] * 5
    assert login(Client(), "nobody@example.com", ip="10.2.1.1").status_code == 429


def test_a_successful_login_is_not_left_counted(web, alice, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 3
    guesses(web, 2)
    for n in range(5):
        assert login(web, password=PASSWORD, ip=f"192.0.2.{n + 1}").status_code == 200

    assert guesses(web, 2, start=10) == [401, 429]


def test_look_alikes_of_an_email_share_its_lock(web, admin_user, settings):
    """The admin's form signs admin@example.com in with a full-width a (U+FF41) in its email: a
    review found each such look-alike with a fresh lock of its own."""
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 3
    admin_guesses(3)

    look_alike = admin_login("\uff41dmin@example.com", PASSWORD, ip="192.0.2.70")
    api = login(web, "ADMIN@EXAMPLE.COM", PASSWORD, ip="192.0.2.71")

    assert look_alike.status_code == 429
    assert api.status_code == 429
