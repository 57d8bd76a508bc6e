"""Access tokens: signed and verified by simplejwt, with the contract's claim rules on top.

Claims: `sub` (user id as a decimal string), `iat`, `exp`, `jti`, `token_type`, and `sfp`, a
keyed fingerprint of the user's password hash and `tokens_valid_after` at issue time. Whatever
changes the password (the admin's form, `manage.py changepassword`, a service calling
`set_password`, even a bulk update) changes the hash, so every token issued before stops
matching: a password change ends every earlier session, with no hook to forget. Ending a user's
sessions on purpose (deactivation in the admin, `manage.py end_sessions`) moves
`tokens_valid_after`, with the same effect. (A hash upgraded at login, when Django's hasher
parameters change, ends the other sessions too, as it does Django's own sessions.)

Tokens issued by the FastAPI backend (no `token_type`, `jti` or `sfp`) stay valid until they
expire (CONTRACT §3.1), unless issued before `tokens_valid_after`: logout of such a token sets
it, and so does a password change saved through the model (User.save; not a bulk update, and not
the hash upgraded at login). A token carrying Lia's `token_type` must carry the other two.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.models.query import RawQuerySet
from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.tokens import AccessToken

from accounts.exceptions import TokenRejected
from accounts.models import RevokedToken, User

SESSION_CLAIM = "sfp"
BIGINT_LIMIT = 2**63  # user ids are 64-bit integers


def session_fingerprint(user: User) -> str:
    """Changes whenever the password hash or `tokens_valid_after` does. Keyed with the signing
    key, so the claim (readable by whoever holds the token) says nothing about the hash."""
    value = f"{user.password}|{user.tokens_valid_after.isoformat() if user.tokens_valid_after else ''}"
    key = settings.SIMPLE_JWT["SIGNING_KEY"]
    return salted_hmac("lia.accounts.tokens.session", value, secret=key, algorithm="sha256").hexdigest()[:24]


@dataclass(frozen=True)
class IssuedToken:
    value: str
    expires_in: int


def token_issue(*, user: User) -> IssuedToken:
    token = AccessToken.for_user(user)
    token[SESSION_CLAIM] = session_fingerprint(user)
    return IssuedToken(value=str(token), expires_in=int(AccessToken.lifetime.total_seconds()))


def token_decode(raw: str) -> dict[str, Any]:
    """Verify signature, algorithm and expiry; apply the contract's claim rules (§3.3)."""
    try:
        payload: dict[str, Any] = token_backend.decode(raw, verify=True)
    except TokenBackendError as exc:
        raise TokenRejected() from exc
    if "refresh" in (payload.get("type"), payload.get("token_type")):
        raise TokenRejected("Cannot use refresh token as access token")
    if not isinstance(payload.get("exp"), int | float) or not isinstance(payload.get("jti", ""), str):
        raise TokenRejected()
    if "sub" not in payload:
        raise TokenRejected("Invalid token payload")
    try:
        int(payload["sub"])
    except (TypeError, ValueError) as exc:
        raise TokenRejected("Invalid user identifier") from exc
    return payload


def _token_user_query(jti: str | None, user_id: int) -> RawQuerySet:
    """The user, and whether the token's jti is revoked, in one query. Written out rather than
    built by the ORM: every authenticated request runs it, and compiling the annotated queryset
    cost more than the query's round trip (~0.8 ms a request on the benchmark's machine)."""
    quote = connections[router.db_for_read(User)].ops.quote_name
    user, revoked = User._meta, RevokedToken._meta
    # Names from the models' metadata only; the values are parameters.
    sql = (
        f"SELECT u.*, EXISTS (SELECT 1 FROM {quote(revoked.db_table)} r"  # noqa: S608
        f" WHERE r.{quote(revoked.get_field('jti').column)} = %s"
        f" AND r.{quote(revoked.get_field('user').column)} = u.{quote(user.pk.column)}) AS token_revoked"
        f" FROM {quote(user.db_table)} u WHERE u.{quote(user.pk.column)} = %s"
    )
    return User.objects.raw(sql, [jti, user_id])


def token_user(payload: dict[str, Any]) -> User:
    """The active user a decoded token speaks for, in one query that also checks revocation."""
    jti = payload.get("jti") or None  # none (the FastAPI backend's tokens) matches no revoked row
    user_id = int(payload["sub"])
    if not -BIGINT_LIMIT <= user_id < BIGINT_LIMIT:  # no such id; SQLite can't even compare it
        raise TokenRejected("User not found")
    user = next(iter(_token_user_query(jti, user_id)), None)
    if user is None:
        raise TokenRejected("User not found")
    if user.token_revoked or not user.is_active:  # type: ignore[attr-defined]
        raise TokenRejected()
    if "token_type" in payload:  # issued by Lia: bound to its jti, the password and the session epoch
        fingerprint = payload.get(SESSION_CLAIM)
        if not jti or not isinstance(fingerprint, str):
            raise TokenRejected()
        if not constant_time_compare(fingerprint, session_fingerprint(user)):
            raise TokenRejected()
    issued_at = payload.get("iat")
    if user.tokens_valid_after and (
        not isinstance(issued_at, int | float) or issued_at < math.floor(user.tokens_valid_after.timestamp())
    ):
        raise TokenRejected()
    return user


def token_expiry(payload: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(payload["exp"], tz=UTC)
