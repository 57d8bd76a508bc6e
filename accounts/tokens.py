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

Every authenticated request checks its session with `claims_user` (one query), except a chat
turn, whose write-ahead statement makes the same checks on PostgreSQL (accounts.authentication).
"""

import functools
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.models.query import RawQuerySet
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.encoding import force_bytes
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.tokens import AccessToken

from accounts.exceptions import TokenRejected
from accounts.models import RevokedToken, User

SESSION_CLAIM = "sfp"
BIGINT_LIMIT = 2**63  # user ids are 64-bit integers
FINGERPRINT_SALT = "lia.accounts.tokens.session"
FINGERPRINT_LENGTH = 24  # hex digits of the HMAC


def session_fingerprint(user: User) -> str:
    """Changes whenever the password hash or `tokens_valid_after` does. Keyed with the signing
    key, so the claim (readable by whoever holds the token) says nothing about the hash. The chat
    turn's write-ahead computes the same in SQL (`conversations_turn_start`, migration 0006): a
    change here, or to `claims_user`'s checks, needs a migration that replaces that function
    (conversations/tests/test_turn_start.py compares the two for every kind of session)."""
    epoch = user.tokens_valid_after
    value = f"{user.password}|{epoch.astimezone(UTC).isoformat() if epoch else ''}"
    key = settings.SIMPLE_JWT["SIGNING_KEY"]
    return salted_hmac(FINGERPRINT_SALT, value, secret=key, algorithm="sha256").hexdigest()[:FINGERPRINT_LENGTH]


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


@dataclass(frozen=True)
class TokenClaims:
    """What a decoded token says about its session. `claims_user` checks it against the user's
    row; on PostgreSQL the chat turn's write-ahead checks it inside its own statement instead
    (`conversations_turn_start`), with `fingerprint_pads` for the `sfp` comparison."""

    user_id: int
    jti: str | None  # None (the FastAPI backend's tokens) matches no revoked row
    issued_at: float | None  # None when absent or not a number
    fingerprint: str | None  # Lia's tokens; "" when one lacks its jti or sfp (matches nothing)


def token_claims(payload: dict[str, Any]) -> TokenClaims:
    """The session claims of a payload `token_decode` accepted. Raises TokenRejected for a user
    id no database row can have."""
    user_id = int(payload["sub"])
    if not -BIGINT_LIMIT <= user_id < BIGINT_LIMIT:  # no such id; SQLite can't even compare it
        raise TokenRejected("User not found")
    jti = payload.get("jti") or None
    fingerprint = None
    if "token_type" in payload:  # issued by Lia: bound to its jti, the password and the session epoch
        claimed = payload.get(SESSION_CLAIM)
        fingerprint = claimed if jti and isinstance(claimed, str) else ""
    issued_at = payload.get("iat")
    if isinstance(issued_at, int | float):
        # As a double, as SQL compares it; beyond a double's range (only a token we signed can
        # say so) as the infinity it compares like.
        issued_at = float(issued_at) if abs(issued_at) < 1e300 else math.copysign(math.inf, issued_at)
    else:
        issued_at = None
    return TokenClaims(user_id=user_id, jti=jti, issued_at=issued_at, fingerprint=fingerprint)


def fingerprint_pads() -> tuple[bytes, bytes]:
    """`session_fingerprint`'s HMAC-SHA256 key as its inner and outer pads (RFC 2104), so that
    SQL's built-in sha256() can compute the same fingerprint: sha256(outer || sha256(inner ||
    value)). They let one compute fingerprints, nothing more: a token still needs the signing key."""
    return _pads_of(settings.SIMPLE_JWT["SIGNING_KEY"])


@functools.lru_cache(maxsize=2)  # derived once per signing key, not on every chat turn
def _pads_of(signing_key: str) -> tuple[bytes, bytes]:
    key = hashlib.sha256(FINGERPRINT_SALT.encode() + force_bytes(signing_key)).digest()
    padded = key.ljust(hashlib.sha256().block_size, b"\0")
    return bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)


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
    return claims_user(token_claims(payload))


def claims_user(claims: TokenClaims) -> User:
    """The active user whose session `claims` still belongs to (what `conversations_turn_start`
    checks in SQL, in the same order)."""
    user = next(iter(_token_user_query(claims.jti, claims.user_id)), None)
    if user is None:
        raise TokenRejected("User not found")
    if user.token_revoked or not user.is_active:  # type: ignore[attr-defined]
        raise TokenRejected()
    if claims.fingerprint is not None and not constant_time_compare(claims.fingerprint, session_fingerprint(user)):
        raise TokenRejected()
    if user.tokens_valid_after and (
        claims.issued_at is None or claims.issued_at < math.floor(user.tokens_valid_after.timestamp())
    ):
        raise TokenRejected()
    return user


def token_expiry(payload: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(payload["exp"], tz=UTC)
