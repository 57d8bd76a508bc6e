"""Access tokens: signed and verified by simplejwt, with the contract's claim rules on top.

Claims: `sub` (user id as a decimal string), `iat`, `exp`, `jti`, `token_type`. Tokens issued
by the FastAPI backend (no `jti`, no `token_type`) stay valid until they expire (CONTRACT §3.1).
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Exists, OuterRef, Value
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.tokens import AccessToken

from accounts.exceptions import TokenRejected
from accounts.models import RevokedToken, User


@dataclass(frozen=True)
class IssuedToken:
    value: str
    expires_in: int


def token_issue(*, user: User) -> IssuedToken:
    token = AccessToken.for_user(user)
    return IssuedToken(value=str(token), expires_in=int(AccessToken.lifetime.total_seconds()))


def token_decode(raw: str) -> dict[str, Any]:
    """Verify signature, algorithm and expiry; apply the contract's claim rules (§3.3)."""
    try:
        payload: dict[str, Any] = token_backend.decode(raw, verify=True)
    except TokenBackendError as exc:
        raise TokenRejected() from exc
    if "refresh" in (payload.get("type"), payload.get("token_type")):
        raise TokenRejected("Cannot use refresh token as access token")
    if not isinstance(payload.get("exp"), int | float):
        raise TokenRejected()
    if "sub" not in payload:
        raise TokenRejected("Invalid token payload")
    try:
        int(payload["sub"])
    except (TypeError, ValueError) as exc:
        raise TokenRejected("Invalid user identifier") from exc
    return payload


def token_user(payload: dict[str, Any]) -> User:
    """The active user a decoded token speaks for, in one query that also checks revocation."""
    jti = payload.get("jti")
    revoked = Exists(RevokedToken.objects.filter(jti=jti, user=OuterRef("pk"))) if jti else Value(False)
    user = User.objects.filter(pk=int(payload["sub"])).annotate(token_revoked=revoked).first()
    if user is None:
        raise TokenRejected("User not found")
    if user.token_revoked or not user.is_active:  # type: ignore[attr-defined]
        raise TokenRejected()
    issued_at = payload.get("iat")
    if user.tokens_valid_after and (
        not isinstance(issued_at, int | float) or issued_at < math.floor(user.tokens_valid_after.timestamp())
    ):
        raise TokenRejected()
    return user


def token_expiry(payload: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(payload["exp"], tz=UTC)
