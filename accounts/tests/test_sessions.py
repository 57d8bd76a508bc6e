"""Tokens the contract doesn't spell out, refused (RELIABILITY 5), and what ends a session
(RELIABILITY 4): a password change by any path, deactivation, deletion."""

import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import bcrypt
import jwt
import pytest
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.core.management import call_command
from django.utils import timezone

from accounts.exceptions import TokenRejected
from accounts.models import User
from accounts.services import token_refresh, user_deactivate
from accounts.tests.test_auth_api import PRODUCTION_HASHERS
from accounts.tokens import claims_user, token_claims, token_decode, token_issue
from conftest import PASSWORD, Persona

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
NEW_PASSWORD = "N3wPassword!"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def lia_claims(user: User) -> dict:
    """The claims of a token Lia issued for `user`, as the tests below alter them."""
    return jwt.decode(token_issue(user=user).value, options={"verify_signature": False})


def sign(claims: dict, *, header: dict | None = None, key: str | None = None) -> str:
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    digest = hmac.new((key or settings.JWT_SECRET_KEY).encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(digest)}"


def me(client, token: str):
    return client.get(ME, headers={"Authorization": f"Bearer {token}"})


def assert_refused(response) -> None:
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert set(response.json()) == {"error"}


# --- the token matrix -------------------------------------------------------------------------------


def rs256_token(user: User) -> str:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(lia_claims(user), private_key, algorithm="RS256")


@pytest.mark.parametrize(
    "make_token",
    [
        # The server's HMAC secret used as if it were an RS256 public key (algorithm confusion).
        lambda u: sign(lia_claims(u), header={"alg": "RS256", "typ": "JWT"}),
        lambda u: rs256_token(u),
        lambda u: sign(lia_claims(u), header={"alg": "none", "typ": "JWT"})[: -len("x")] + "x",
        lambda u: b64(b'{"alg":"none"}') + "." + b64(json.dumps(lia_claims(u)).encode()) + ".",
        lambda u: sign({k: v for k, v in lia_claims(u).items() if k != "jti"}),
        lambda u: sign({**lia_claims(u), "jti": 12345}),
        lambda u: sign({k: v for k, v in lia_claims(u).items() if k != "sfp"}),
        lambda u: sign({**lia_claims(u), "sfp": "0" * 24}),
        lambda u: sign({**lia_claims(u), "nbf": int(timezone.now().timestamp()) + 600}),
        lambda u: sign({**lia_claims(u), "exp": "tomorrow"}),
        lambda u: sign({**lia_claims(u), "iat": "yesterday"}),
        lambda u: sign({**lia_claims(u), "sub": 10**30}),
        lambda u: sign({**lia_claims(u), "sub": None}),
        lambda u: sign({**lia_claims(u), "sub": ["1"]}),
        lambda u: sign({k: v for k, v in lia_claims(u).items() if k != "sub"}),
        lambda u: sign({**lia_claims(u), "token_type": "refresh"}),
        lambda u: sign([1, 2, 3]),
        lambda u: sign(lia_claims(u), key="x" * 64),
        lambda u: "A" * 8192,
        lambda u: "a.b.c",
        lambda u: "....",
        lambda u: token_issue(user=u).value + "x",
    ],
    ids=[
        "rs256-header-hmac-key-confusion",
        "rs256-signed",
        "alg-none-signed",
        "alg-none-unsigned",
        "missing-jti",
        "jti-not-a-string",
        "missing-session-fingerprint",
        "wrong-session-fingerprint",
        "nbf-in-the-future",
        "exp-not-a-number",
        "iat-not-a-number",
        "sub-huge",
        "sub-null",
        "sub-list",
        "missing-sub",
        "refresh-token-as-access-token",
        "payload-not-an-object",
        "other-key",
        "8kb-garbage",
        "three-dots",
        "empty-segments",
        "trailing-garbage",
    ],
)
def test_bad_tokens_are_401_never_500(web, alice, make_token, caplog):
    caplog.set_level(logging.INFO)

    assert_refused(me(web, make_token(alice.user)))
    rejections = [r for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "auth.rejected"]
    assert len(rejections) == 1  # each rejection is logged, once


def test_a_deleted_users_token_is_refused(web, alice):
    User.objects.filter(pk=alice.user.pk).delete()

    response = me(web, alice.token)

    assert_refused(response)
    assert response.json() == {"error": {"message": "User not found"}}


def test_a_legacy_token_keeps_working(web, alice):
    """CONTRACT §3.1: tokens of the FastAPI backend (no jti, no token_type) stay valid until they expire."""
    now = int(timezone.now().timestamp())
    legacy = jwt.encode({"sub": str(alice.user.pk), "iat": now, "exp": now + 600}, settings.JWT_SECRET_KEY)

    assert me(web, legacy).status_code == 200


# --- what ends a session ----------------------------------------------------------------------------


def _still_in(web, persona: Persona) -> bool:
    return me(web, persona.token).status_code == 200


def _can_log_in(web, email: str, password: str) -> bool:
    response = web.post(LOGIN, json.dumps({"email": email, "password": password}), content_type="application/json")
    if response.status_code != 200:
        return False
    web.cookies.clear()
    return me(web, response.json()["access_token"]).status_code == 200


def change_through_the_admin(persona: Persona, admin_client) -> None:
    response = admin_client.post(
        f"/admin/accounts/user/{persona.user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:500]


def change_through_changepassword(persona: Persona, admin_client) -> None:
    import getpass

    original = getpass.getpass
    getpass.getpass = lambda prompt="": NEW_PASSWORD
    try:
        call_command("changepassword", persona.user.email, stdout=StringIO())
    finally:
        getpass.getpass = original


def change_through_set_password(persona: Persona, admin_client) -> None:
    user = User.objects.get(pk=persona.user.pk)
    user.set_password(NEW_PASSWORD)
    user.save(update_fields=["password"])


def change_through_a_bulk_update(persona: Persona, admin_client) -> None:
    User.objects.filter(pk=persona.user.pk).update(password=make_password(NEW_PASSWORD))


@pytest.mark.parametrize(
    "change",
    [
        change_through_the_admin,
        change_through_changepassword,
        change_through_set_password,
        change_through_a_bulk_update,
    ],
    ids=["admin-form", "manage-changepassword", "set_password", "bulk-update"],
)
def test_a_password_change_ends_every_earlier_session(web, alice, admin_client, change):
    second_device = Persona(user=alice.user, token=token_issue(user=alice.user).value)
    assert _still_in(web, alice)

    change(alice, admin_client)

    assert_refused(me(web, alice.token))
    assert_refused(me(web, second_device.token))
    assert_refused(web.post(REFRESH, headers=alice.bearer))
    assert not _can_log_in(web, alice.user.email, PASSWORD)
    assert _can_log_in(web, alice.user.email, NEW_PASSWORD)


def fastapi_token(user: User) -> str:
    """A token as the FastAPI backend issued them: no jti, token_type or session fingerprint."""
    issued = int(timezone.now().timestamp()) - 5
    return jwt.encode({"sub": str(user.pk), "iat": issued, "exp": issued + 600}, settings.JWT_SECRET_KEY)


@pytest.mark.parametrize(
    "change",
    [change_through_the_admin, change_through_changepassword, change_through_set_password],
    ids=["admin-form", "manage-changepassword", "set_password"],
)
def test_a_password_change_ends_the_fastapi_backends_tokens_too(web, alice, admin_client, change):
    legacy = fastapi_token(alice.user)
    assert me(web, legacy).status_code == 200

    change(alice, admin_client)

    assert_refused(me(web, legacy))
    assert _can_log_in(web, alice.user.email, NEW_PASSWORD)


def test_refreshing_a_fastapi_backends_token_gives_one_that_works(web, alice):
    """A legacy token has no jti, so refreshing it ends every session of its user issued so far;
    the new token must be bound to the new epoch (it was issued from the user as loaded before,
    and refused at once). Found by a reliability audit."""
    legacy = fastapi_token(alice.user)

    refreshed = web.post(REFRESH, headers={"Authorization": f"Bearer {legacy}"})

    assert refreshed.status_code == 200
    new = refreshed.json()["access_token"]
    web.cookies.clear()  # the refresh set the new token's cookie too, which would win over a bearer
    assert me(web, new).status_code == 200
    assert_refused(me(web, legacy))
    assert_refused(me(web, alice.token))  # issued before the refresh: ended with it


def test_of_two_concurrent_refreshes_of_a_legacy_token_only_one_succeeds(alice):
    """Both accepted the token (the user as each loaded it); the second would end the first's
    new token, so it is refused."""
    payload = token_decode(fastapi_token(alice.user))
    first_view, second_view = (User.objects.get(pk=alice.user.pk) for _ in range(2))

    issued = token_refresh(user=first_view, payload=payload)

    with pytest.raises(TokenRejected):
        token_refresh(user=second_view, payload=payload)
    assert claims_user(token_claims(token_decode(issued.value))).pk == alice.user.pk  # still valid


def test_a_password_made_unusable_ends_every_session(web, alice):
    legacy = fastapi_token(alice.user)
    user = User.objects.get(pk=alice.user.pk)
    user.set_unusable_password()
    user.save()

    assert_refused(me(web, alice.token))
    assert_refused(me(web, legacy))


def _bcrypt(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _argon2id_as_django_makes_it(password: str) -> str:
    """A FastAPI-era (unprefixed) argon2id hash that Django finds nothing to upgrade in (its own
    parameters and salt alphabet), so accounts.User.check_password re-hashes it itself."""
    hashed = Argon2PasswordHasher().encode(password, Argon2PasswordHasher().salt())
    return hashed.removeprefix("argon2")


@pytest.mark.parametrize(
    "fastapi_hash", [_bcrypt, _argon2id_as_django_makes_it], ids=["bcrypt-upgraded-by-django", "argon2id-by-lia"]
)
def test_the_hash_upgraded_at_login_is_not_a_password_change(web, settings, fastapi_hash):
    """A FastAPI-era user's first login re-hashes their password: their other devices stay in."""
    settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
    user = User.objects.create(email="old@example.com", username="old", password=fastapi_hash(PASSWORD))
    other_device = fastapi_token(user)

    assert _can_log_in(web, "old@example.com", PASSWORD)

    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")  # re-hashed
    assert user.tokens_valid_after is None
    assert me(web, other_device).status_code == 200


def test_a_new_user_has_no_session_epoch(alice):
    assert User.objects.get(pk=alice.user.pk).tokens_valid_after is None


def test_the_same_password_set_again_still_ends_sessions(web, alice):
    """A new salt is a new hash: "change" to the same password logs other devices out too."""
    user = User.objects.get(pk=alice.user.pk)
    user.set_password(PASSWORD)
    user.save()

    assert_refused(me(web, alice.token))


def test_other_users_sessions_are_unaffected(web, alice, bob):
    change_through_set_password(alice, None)

    assert me(web, bob.token).status_code == 200


def test_deactivation_through_the_admin_ends_sessions_for_good(web, alice, admin_client):
    response = admin_client.post(
        f"/admin/accounts/user/{alice.user.pk}/change/",
        {"email": alice.user.email, "username": alice.user.username},  # is_active unchecked
    )
    alice.user.refresh_from_db()

    assert response.status_code == 302, response.content.decode()[:500]
    assert not alice.user.is_active
    assert_refused(me(web, alice.token))
    assert not _can_log_in(web, alice.user.email, PASSWORD)
    User.objects.filter(pk=alice.user.pk).update(is_active=True)
    assert_refused(me(web, alice.token))  # reactivation doesn't revive the old token
    assert _can_log_in(web, alice.user.email, PASSWORD)


def test_an_inactive_user_is_refused_whatever_deactivated_it(web, alice):
    User.objects.filter(pk=alice.user.pk).update(is_active=False)

    assert_refused(me(web, alice.token))
    assert_refused(web.post(REFRESH, headers=alice.bearer))
    assert not _can_log_in(web, alice.user.email, PASSWORD)


def test_deactivation_by_the_service_is_for_good(web, alice):
    user_deactivate(user=User.objects.get(pk=alice.user.pk))
    User.objects.filter(pk=alice.user.pk).update(is_active=True)  # reactivated later

    assert_refused(me(web, alice.token))
    assert _can_log_in(web, alice.user.email, PASSWORD)


def test_the_admin_action_ends_sessions(web, alice, bob, admin_client):
    response = admin_client.post(
        "/admin/accounts/user/", {"action": "end_sessions", "_selected_action": [alice.user.pk]}
    )

    assert response.status_code == 302
    assert_refused(me(web, alice.token))
    assert me(web, bob.token).status_code == 200
    assert _can_log_in(web, alice.user.email, PASSWORD)


@pytest.mark.parametrize(("codename", "ends"), [("view_user", False), ("change_user", True)])
def test_only_staff_who_may_change_users_end_their_sessions(web, alice, bob, client, codename, ends):
    """Found by an audit: the action asked for no permission, so staff who may only view users
    were offered it and could end anyone's sessions, a superuser's included."""
    from django.contrib.auth.models import Permission

    staff = User.objects.create_user("staff@example.com", "staff", PASSWORD, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename=codename))
    client.force_login(staff)

    listing = client.get("/admin/accounts/user/").content.decode()
    client.post("/admin/accounts/user/", {"action": "end_sessions", "_selected_action": [alice.user.pk]})

    assert ('value="end_sessions"' in listing) is ends
    assert (me(web, alice.token).status_code == 401) is ends
    assert me(web, bob.token).status_code == 200


def test_end_sessions_command(web, alice, bob):
    out = StringIO()

    call_command("end_sessions", "ALICE@example.com", stdout=out)

    assert "Ended the sessions of 1 user(s)." in out.getvalue()
    assert_refused(me(web, alice.token))
    assert me(web, bob.token).status_code == 200


def test_end_sessions_command_for_everyone(web, alice, bob):
    call_command("end_sessions", "--all", stdout=StringIO())

    assert_refused(me(web, alice.token))
    assert_refused(me(web, bob.token))


@pytest.mark.parametrize("args", [(), ("alice@example.com", "--all"), ("nobody@example.com",)])
def test_end_sessions_command_refuses_unclear_requests(alice, args):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("end_sessions", *args, stdout=StringIO())


def test_end_sessions_command_without_a_database_fails_in_one_line():
    """Found by an audit: ~110 lines of psycopg and pool traceback."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens on it once closed
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "JWT_", "DATABASE_"))}
    env.update(DJANGO_DEBUG="true", DATABASE_URL=f"postgres://lia@127.0.0.1:{port}/lia", DATABASE_POOL_TIMEOUT="1")
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "end_sessions", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    # The pool's own warnings (why it can't connect) come from its thread, before or after it.
    assert "CommandError: database unavailable: couldn't get a connection after 1.00 sec" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_sessions_ended_also_end_legacy_tokens(web, alice):
    now = int(timezone.now().timestamp()) - 5
    legacy = jwt.encode({"sub": str(alice.user.pk), "iat": now, "exp": now + 600}, settings.JWT_SECRET_KEY)

    call_command("end_sessions", alice.user.email, stdout=StringIO())

    assert_refused(me(web, legacy))


def test_the_session_fingerprint_is_the_same_in_any_time_zone(alice):
    """The chat turn's write-ahead rebuilds the fingerprint in SQL from the epoch in UTC; a
    datetime in another zone (DATABASES' TIME_ZONE, code that sets one) must not change it."""
    from datetime import UTC, datetime

    from accounts.tokens import session_fingerprint

    instant = datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)
    alice.user.tokens_valid_after = instant
    in_utc = session_fingerprint(alice.user)
    alice.user.tokens_valid_after = instant.astimezone(timezone.get_fixed_timezone(-330))

    assert session_fingerprint(alice.user) == in_utc


def test_ending_sessions_also_ends_admin_sign_ins(client, admin_user):
    """Found by a security audit: `end_sessions` (or the admin's action) for a staff account whose
    admin session cookie leaked left that cookie working; only a password change ended it."""
    client.force_login(admin_user)
    assert client.get("/admin/accounts/user/").status_code == 200

    call_command("end_sessions", admin_user.email, stdout=StringIO())

    assert client.get("/admin/accounts/user/").status_code == 302  # to the login form


def test_an_admin_sign_in_without_an_ended_session_is_kept(client, admin_user):
    client.force_login(admin_user)

    admin_user.refresh_from_db()
    admin_user.save()  # no password change, no ended sessions

    assert client.get("/admin/accounts/user/").status_code == 200


def test_staff_ending_their_own_sessions_in_the_admin_stay_signed_in_there(admin_client, admin_user, alice):
    """As after changing their own password there: every other session ends, not the one acting."""
    response = admin_client.post(
        "/admin/accounts/user/", {"action": "end_sessions", "_selected_action": [admin_user.pk, alice.user.pk]}
    )

    assert response.status_code == 302
    assert admin_client.get("/admin/accounts/user/").status_code == 200
    admin_user.refresh_from_db()
    assert admin_user.tokens_valid_after is not None
