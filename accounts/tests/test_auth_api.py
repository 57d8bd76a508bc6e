"""Auth endpoints through HTTP, case by case against CONTRACT §3 to §5."""

import json
from datetime import timedelta
from typing import ClassVar

import jwt
import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher
from django.utils import timezone

from accounts.models import User
from conftest import PASSWORD, Persona

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"

pytestmark = pytest.mark.django_db


def post_json(client, path: str, body: object, **headers: str):
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def register_body(**overrides: str) -> dict[str, str]:
    return {"email": "ada@example.com", "username": "ada", "password": "Passw0rdX", **overrides}


def decode(token: str) -> dict:
    return jwt.decode(token, settings.JWT_SECRET_KEY, algorithms=["HS256"])


# --- register -------------------------------------------------------------------


def test_register_returns_token_user_and_cookie(web):
    response = post_json(web, REGISTER, register_body(email="Ada.Lovelace@Example.COM"))

    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["access_token", "token_type", "expires_in", "user"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 604800
    user = body["user"]
    assert list(user) == ["id", "email", "username", "created_at"]
    assert isinstance(user["id"], int)
    assert user["email"] == "Ada.Lovelace@example.com"  # domain lower-cased, local part kept
    assert user["username"] == "ada"
    assert user["created_at"].endswith("Z")

    cookie = response.cookies["access_token"]
    assert cookie.value == body["access_token"]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == 604800
    assert cookie["domain"] == ""

    claims = decode(body["access_token"])
    assert claims["sub"] == str(user["id"])
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("overrides", "field", "phrase"),
    [
        ({"email": "not-an-email"}, "email", "value is not a valid email address"),
        ({"email": "a" * 251 + "@x.io"}, "email", "at most 255"),
        ({"username": "ab"}, "username", "at least 3 characters"),
        ({"username": "a" * 51}, "username", "at most 50 characters"),
        ({"username": "ada lovelace"}, "username", "letters, digits, underscores and hyphens"),
        ({"username": "adé"}, "username", "letters, digits, underscores and hyphens"),
        ({"password": "Sh0rt"}, "password", "String should have at least 8 characters"),
        ({"password": "Aa1" + "x" * 98}, "password", "at most 100 characters"),
        ({"password": "passw0rdx"}, "password", "Password must contain at least one uppercase letter"),
        ({"password": "PASSW0RDX"}, "password", "Password must contain at least one lowercase letter"),
        ({"password": "Passwordx"}, "password", "Password must contain at least one digit"),
    ],
)
def test_register_validation_failures_are_422_with_both_shapes(web, overrides, field, phrase):
    response = post_json(web, REGISTER, register_body(**overrides))

    assert response.status_code == 422
    body = response.json()
    assert phrase in body["error"]["message"]
    assert body["error"]["details"]["errors"][0]["field"] == field
    assert body["detail"][0]["loc"] == ["body", field]
    assert phrase in body["detail"][0]["msg"]
    assert "type" in body["detail"][0]
    assert "input" not in body["detail"][0]
    assert not User.objects.exists()


def test_validation_errors_never_echo_the_password(web):
    secret = "nouppercase1-and-a-secret"
    response = post_json(web, REGISTER, register_body(password=secret))

    assert response.status_code == 422
    assert secret not in response.content.decode()


def test_missing_fields_are_each_reported(web):
    response = post_json(web, REGISTER, {})

    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["error"]["details"]["errors"]}
    assert fields == {"email", "username", "password"}
    assert {item["type"] for item in response.json()["detail"]} == {"missing"}


@pytest.mark.parametrize(
    "body",
    [
        register_body(username=12345),
        register_body(password=["Passw0rdX"]),
        register_body(email=None),
        register_body(username=True),
    ],
)
def test_wrong_types_are_422(web, body):
    response = post_json(web, REGISTER, body)

    assert response.status_code == 422
    assert not User.objects.exists()


def test_unknown_fields_are_ignored(web):
    response = post_json(web, REGISTER, register_body(is_staff=True, is_superuser=True, id=999, role="admin"))

    assert response.status_code == 201
    user = User.objects.get()
    assert user.pk != 999
    assert not user.is_staff
    assert not user.is_superuser


@pytest.mark.parametrize(
    "overrides",
    [{"email": "ALICE@example.com", "username": "fresh"}, {"email": "fresh@example.com", "username": "Alice"}],
)
def test_duplicate_email_or_username_is_400_with_one_message(web, alice, overrides):
    response = post_json(web, REGISTER, register_body(**overrides))

    assert response.status_code == 400
    assert response.json() == {"error": {"message": "An account with this email or username already exists"}}


def test_a_100_character_password_works_end_to_end(web):
    password = "Aa1" + "x" * 97
    assert post_json(web, REGISTER, register_body(password=password)).status_code == 201

    response = post_json(web, LOGIN, {"email": "ada@example.com", "password": password})

    assert response.status_code == 200


# --- login ----------------------------------------------------------------------


def test_login_sets_cookie_and_matches_email_case_insensitively(web, alice: Persona):
    response = post_json(web, LOGIN, {"email": "Alice@EXAMPLE.com", "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {
        "id": alice.user.pk,
        "email": "alice@example.com",
        "username": "alice",
        "created_at": body["user"]["created_at"],
    }
    assert response.cookies["access_token"].value == body["access_token"]


def test_a_login_is_the_users_last_login_and_ends_no_session(web, alice: Persona):
    assert alice.user.last_login is None

    response = post_json(web, LOGIN, {"email": "alice@example.com", "password": PASSWORD})

    alice.user.refresh_from_db()
    assert response.status_code == 200
    assert alice.user.last_login is not None
    assert web.get("/api/v1/auth/me", headers=alice.bearer).status_code == 200  # the earlier token too


def test_wrong_password_and_unknown_email_look_the_same(web, alice):
    wrong_password = post_json(web, LOGIN, {"email": "alice@example.com", "password": "Wrong1234"})
    unknown_email = post_json(web, LOGIN, {"email": "nobody@example.com", "password": "Wrong1234"})

    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
    assert wrong_password.content == unknown_email.content
    assert wrong_password.json() == {"error": {"message": "Invalid email or password"}}


def test_login_validates_the_email_syntax(web):
    response = post_json(web, LOGIN, {"email": "nope", "password": "x"})

    assert response.status_code == 422


def test_internationalised_addresses_register_and_log_in(web):
    # The FastAPI backend's EmailStr took them: an account carried over with one must sign in.
    body = register_body(email="José.Müller@EXÄMPLE.com")

    registered = post_json(web, REGISTER, body)
    logged_in = post_json(web, LOGIN, {"email": "josé.müller@exämple.com", "password": body["password"]})

    assert registered.status_code == 201
    assert registered.json()["user"]["email"] == "José.Müller@exämple.com"
    assert logged_in.status_code == 200


def test_an_address_with_non_ascii_capitals_finds_itself(web):
    # SQLite's lower() folds only ASCII letters: compared with Python's, ÉMILE@ matched nothing.
    body = register_body(email="ÉMILE@example.com")

    registered = post_json(web, REGISTER, body)
    again = post_json(web, REGISTER, register_body(email="ÉMILE@example.com", username="emile"))
    logged_in = post_json(web, LOGIN, {"email": "ÉMILE@EXAMPLE.COM", "password": body["password"]})

    assert registered.status_code == 201
    assert again.status_code == 400
    assert again.json() == {"error": {"message": "An account with this email or username already exists"}}
    assert logged_in.status_code == 200


@pytest.mark.parametrize(
    "email",
    [
        "a\u200bb@example.com",  # an invisible format character
        "a\u3000b@example.com",  # a space, if not an ASCII one
        "\u0301a@example.com",  # a combining mark with nothing to combine with
        "a\u0085b@example.com",  # a control character
        "jos\u00e9..m@example.com",  # the dot-atom rules still hold
    ],
)
def test_internationalised_addresses_still_follow_the_syntax(web, email):
    for path, body in ((REGISTER, register_body(email=email)), (LOGIN, {"email": email, "password": "x"})):
        response = post_json(web, path, body)

        assert response.status_code == 422
        assert response.json()["error"]["message"] == "email: value is not a valid email address"


def test_a_full_width_look_alike_of_a_taken_email_is_the_same_email(web, alice):
    response = post_json(web, REGISTER, register_body(email="\uff41lice@example.com", username="alice2"))

    assert response.status_code == 400
    assert User.objects.count() == 1


class CountingHasher(MD5PasswordHasher):
    calls: ClassVar[list[str]] = []

    def salt(self):  # once per new hash (the unknown-email path hashes a dummy password)
        self.calls.append("hash")
        return super().salt()

    def verify(self, password, encoded):
        self.calls.append("verify")
        return super().verify(password, encoded)


def test_login_hashes_once_whether_or_not_the_email_exists(web, alice, settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    CountingHasher.calls.clear()
    post_json(web, LOGIN, {"email": "alice@example.com", "password": "Wrong1234"})
    known = len(CountingHasher.calls)
    CountingHasher.calls.clear()
    post_json(web, LOGIN, {"email": "nobody@example.com", "password": "Wrong1234"})

    assert known == len(CountingHasher.calls) == 1


def fastapi_hashes(password: str) -> dict[str, str]:
    import argon2
    import bcrypt

    raw_bcrypt = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    raw_argon2 = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)
    return {
        "bcrypt-raw": raw_bcrypt,
        "bcrypt-2a-raw": "$2a$" + raw_bcrypt[4:],
        "bcrypt-prefixed": "bcrypt$" + raw_bcrypt,
        "argon2id-raw": raw_argon2,
        "argon2id-prefixed": "argon2" + raw_argon2,
    }


PRODUCTION_HASHERS = [
    "accounts.hashers.Argon2PasswordHasher",
    "accounts.hashers.LegacyBCryptPasswordHasher",
]


@pytest.mark.parametrize("kind", list(fastapi_hashes("x")))
@pytest.mark.parametrize("password", ["Legacy1pass", "Long1" + "x" * 90], ids=["short", "over-72-bytes"])
def test_fastapi_hashes_log_in_and_are_upgraded(web, settings, kind, password):
    settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
    legacy = fastapi_hashes(password)[kind]
    user = User.objects.create(email="old@example.com", username="old", password=legacy)

    wrong = post_json(web, LOGIN, {"email": "old@example.com", "password": "Wrong1pass"})
    response = post_json(web, LOGIN, {"email": "old@example.com", "password": password})

    assert wrong.status_code == 401
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password(password)


# --- me and credentials ---------------------------------------------------------------


def test_me_with_cookie(web, alice):
    web.cookies["access_token"] = alice.token

    response = web.get(ME)

    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"


def test_me_with_bearer_any_scheme_case(web, alice):
    response = web.get(ME, headers={"Authorization": f"bearer {alice.token}"})

    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_cookie_is_used_exclusively_even_when_invalid(web, alice):
    web.cookies["access_token"] = "garbage"

    response = web.get(ME, headers=alice.bearer)

    assert response.status_code == 401
    assert response.json() == {"error": {"message": "Invalid or expired token"}}


def test_no_credentials_is_401_never_403(web):
    response = web.get(ME)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": {"message": "Authentication required"}}


def _sign(claims: dict, *, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or settings.JWT_SECRET_KEY, algorithm=algorithm)


def _claims(user: User, **overrides: object) -> dict:
    now = int(timezone.now().timestamp())
    return {"sub": str(user.pk), "iat": now, "exp": now + 3600, **overrides}


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda u: _sign(_claims(u), key="another-key-of-sufficient-length-0123456789"), "Invalid or expired token"),
        (lambda u: _sign(_claims(u), algorithm="HS512"), "Invalid or expired token"),
        (lambda u: jwt.encode(_claims(u), None, algorithm="none"), "Invalid or expired token"),
        (lambda u: _sign(_claims(u, exp=int(timezone.now().timestamp()) - 10)), "Invalid or expired token"),
        (lambda u: _sign(_claims(u, nbf=int(timezone.now().timestamp()) + 3600)), "Invalid or expired token"),
        (lambda u: _sign(_claims(u, type="refresh")), "Cannot use refresh token as access token"),
        (lambda u: _sign(_claims(u, token_type="refresh")), "Cannot use refresh token as access token"),
        (lambda u: _sign({k: v for k, v in _claims(u).items() if k != "sub"}), "Invalid token payload"),
        (lambda u: _sign(_claims(u, sub="abc")), "Invalid user identifier"),
        (lambda u: _sign(_claims(u, sub="999999")), "User not found"),
        (lambda u: _sign(_claims(u, sub=str(2**70))), "User not found"),
        (lambda u: _sign(_claims(u, sub=str(-(2**63) - 1))), "User not found"),
        (lambda u: _sign({k: v for k, v in _claims(u).items() if k != "exp"}), "Invalid or expired token"),
        (lambda u: "x" * 8192, "Invalid or expired token"),
    ],
    ids=[
        "other-key",
        "other-algorithm",
        "alg-none",
        "expired",
        "not-yet-valid",
        "refresh-type",
        "refresh-token-type",
        "no-sub",
        "sub-not-int",
        "deleted-user",
        "sub-past-64-bits",
        "sub-below-64-bits",
        "no-exp",
        "garbage",
    ],
)
def test_bad_tokens_are_401_with_the_contract_message(web, alice, make_token, message):
    response = web.get(ME, headers={"Authorization": f"Bearer {make_token(alice.user)}"})

    assert response.status_code == 401
    assert response.json() == {"error": {"message": message}}
    assert response["WWW-Authenticate"] == "Bearer"


def test_tampered_payload_is_401(web, alice):
    header, payload, signature = alice.token.split(".")
    other = _sign(_claims(alice.user, sub="1")).split(".")[1]

    response = web.get(ME, headers={"Authorization": f"Bearer {header}.{other}x.{signature}"})

    assert response.status_code == 401
    assert payload != other


def test_token_expires_after_its_lifetime(web, alice):
    with time_machine.travel(timezone.now() + timedelta(days=7, seconds=1)):
        response = web.get(ME, headers=alice.bearer)

    assert response.status_code == 401


def test_a_token_works_until_its_exp_and_is_refused_after_it_on_every_kind_of_route(web, alice):
    """RELIABILITY 1: the second before `exp` the token works; the second after, a read, a list
    and a refresh all get the contract's 401."""
    exp = decode(alice.token)["exp"]

    with time_machine.travel(exp - 1, tick=False):
        valid = web.get(ME, headers=alice.bearer)
    with time_machine.travel(exp + 1, tick=False):
        expired = [
            web.get(ME, headers=alice.bearer),
            web.get("/api/v1/chat/history", headers=alice.bearer),
            web.post(REFRESH, headers=alice.bearer),
        ]

    assert valid.status_code == 200
    for response in expired:
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
        assert response.json() == {"error": {"message": "Invalid or expired token"}}


@pytest.mark.parametrize("how", ["login", "refresh"])
def test_login_and_refresh_issue_tokens_and_cookies_of_the_configured_lifetime(web, alice, how):
    """RELIABILITY 1 and 6: exp - iat, expires_in and the cookie's Max-Age are all
    JWT_ACCESS_TOKEN_EXPIRE_DAYS; the cookie is HttpOnly, Secure, SameSite=Lax, Path=/, host-only."""
    if how == "login":
        response = post_json(web, LOGIN, {"email": "alice@example.com", "password": PASSWORD})
    else:
        response = web.post(REFRESH, headers=alice.bearer)

    lifetime = settings.JWT_ACCESS_TOKEN_EXPIRE_DAYS * 24 * 3600
    body = response.json()
    claims = decode(body["access_token"])
    assert claims["exp"] - claims["iat"] == body["expires_in"] == lifetime
    cookie = response.cookies["access_token"]
    assert cookie.value == body["access_token"]
    assert (cookie["httponly"], cookie["secure"], cookie["samesite"], cookie["path"], cookie["domain"]) == (
        True,
        True,
        "Lax",
        "/",
        "",
    )
    assert cookie["max-age"] == lifetime


def test_legacy_fastapi_token_without_jti_is_accepted(web, alice):
    token = _sign(_claims(alice.user))

    assert web.get(ME, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_deactivated_user_is_401(web, alice):
    User.objects.filter(pk=alice.user.pk).update(is_active=False)

    assert web.get(ME, headers=alice.bearer).status_code == 401


# --- refresh and logout -------------------------------------------------------------


def test_refresh_issues_a_new_token_and_spends_the_old_one(web, alice):
    response = web.post(REFRESH, headers=alice.bearer)

    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] != alice.token
    assert response.cookies["access_token"].value == body["access_token"]
    web.cookies.clear()  # use the headers below, not the cookie the response just set
    assert web.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200
    assert web.get(ME, headers=alice.bearer).status_code == 401
    second = web.post(REFRESH, headers=alice.bearer)
    assert second.status_code == 401


def test_refresh_without_auth_is_401(web):
    assert web.post(REFRESH).status_code == 401


def test_logout_revokes_the_token_and_clears_the_cookie(web, alice):
    web.cookies["access_token"] = alice.token

    response = web.post(LOGOUT)

    assert response.status_code == 200
    assert response.json() == {"message": "Logged out"}
    cookie = response.cookies["access_token"]
    assert cookie.value == ""
    assert cookie["max-age"] == 0
    assert cookie["path"] == "/"
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert web.get(ME, headers=alice.bearer).status_code == 401
    web.cookies["access_token"] = alice.token
    assert web.get(ME).status_code == 401


@pytest.mark.parametrize(
    ("samesite", "secure", "domain"), [("none", True, "example.com"), ("strict", False, ""), ("lax", True, "")]
)
def test_logout_clears_the_cookie_with_the_attributes_it_was_set_with(web, alice, settings, samesite, secure, domain):
    """CONTRACT §3.2 (W15): a deletion missing one of them fails for SameSite=None or domain cookies."""
    settings.COOKIE_SAMESITE, settings.COOKIE_SECURE, settings.COOKIE_DOMAIN = samesite, secure, domain or None

    login = web.post(
        LOGIN, json.dumps({"email": alice.user.email, "password": PASSWORD}), content_type="application/json"
    )
    logout = web.post(LOGOUT)

    def attributes(set_cookie: str) -> set[str]:
        """The Set-Cookie header's attributes, but for the value and the lifetime."""
        _, *rest = (part.strip() for part in set_cookie.split(";"))
        return {part for part in rest if not part.lower().startswith(("max-age=", "expires="))}

    set_cookie, cleared = login.cookies["access_token"].OutputString(), logout.cookies["access_token"].OutputString()
    assert attributes(cleared) == attributes(set_cookie)
    assert {f"SameSite={samesite.capitalize()}", "HttpOnly", "Path=/"} <= attributes(set_cookie)
    assert ("Secure" in attributes(set_cookie), f"Domain={domain}" in attributes(set_cookie)) == (secure, bool(domain))
    assert cleared.startswith('access_token="";')
    assert "Max-Age=0" in cleared


def test_logout_of_a_legacy_token_revokes_it(web, alice):
    token = _sign(_claims(alice.user, iat=int(timezone.now().timestamp()) - 5))

    web.post(LOGOUT, headers={"Authorization": f"Bearer {token}"})

    assert web.get(ME, headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer garbage"}])
def test_logout_never_fails(web, headers):
    response = web.post(LOGOUT, headers=headers)

    assert response.status_code == 200
    assert response.json() == {"message": "Logged out"}


def test_logout_of_an_already_revoked_token_is_fine(web, alice):
    web.post(LOGOUT, headers=alice.bearer)

    assert web.post(LOGOUT, headers=alice.bearer).status_code == 200


def test_cookie_attributes_follow_settings(web, settings):
    settings.COOKIE_SAMESITE = "none"
    settings.COOKIE_DOMAIN = "example.com"
    settings.COOKIE_NAME = "lia_session"

    response = post_json(web, REGISTER, register_body())

    cookie = response.cookies["lia_session"]
    assert cookie["samesite"] == "None"
    assert cookie["domain"] == "example.com"
    logout = web.post(LOGOUT)
    cleared = logout.cookies["lia_session"]
    assert (cleared["samesite"], cleared["domain"], cleared["secure"]) == ("None", "example.com", True)


def test_usernames_are_not_trimmed(web):
    response = post_json(web, REGISTER, register_body(username="  carl  "))

    assert response.status_code == 422
