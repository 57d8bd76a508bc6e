from typing import Any

import structlog
from django.conf import settings
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.exceptions import TokenRejected
from accounts.models import User
from accounts.tokens import TokenClaims, claims_user, token_claims, token_decode


def raw_token(request: HttpRequest | Request) -> str | None:
    """The cookie's token if the cookie is non-empty (used exclusively), else the Bearer
    token (CONTRACT §3.3)."""
    cookie = request.COOKIES.get(settings.COOKIE_NAME)
    if cookie:
        return cookie
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class ClaimedUser:
    """`request.user` where the view checks the session itself (`checks_session_itself_on`): the
    user a valid token names, not yet confirmed to still accept that session (a query)."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, claims: TokenClaims) -> None:
        self.claims = claims
        self.pk = self.id = claims.user_id

    def __str__(self) -> str:
        return f"user {self.pk} (unconfirmed)"


class JWTCookieOrBearerAuthentication(BaseAuthentication):
    """The token's signature, expiry and claims, then its session: its user exists, is active,
    and still accepts it (one query). For the methods a view lists in `checks_session_itself_on`
    it gets a ClaimedUser instead and makes that check with its first write (the chat stream,
    whose write-ahead statement does it on PostgreSQL). Such a view must confirm the session
    (`session_ended`, or a write that checks it) before anything it does or answers depends on
    the user, refusals included, so that a token its user no longer accepts gets the same 401 as
    on every other endpoint. (The token's user id is logged either way: its signature says whose
    it is.)"""

    def authenticate(self, request: Request) -> tuple[User | ClaimedUser, dict[str, Any]] | None:
        raw = raw_token(request)
        if raw is None:
            return None
        try:
            payload = token_decode(raw)
            claims = token_claims(payload)
            structlog.contextvars.bind_contextvars(user_id=claims.user_id)
            view = (request.parser_context or {}).get("view")
            if request.method in getattr(view, "checks_session_itself_on", ()):
                return ClaimedUser(claims), payload
            return claims_user(claims), payload
        except TokenRejected as exc:
            raise AuthenticationFailed(str(exc)) from exc

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (never 403) with WWW-Authenticate: Bearer.
        return "Bearer"


def session_ended(claims: TokenClaims) -> TokenRejected | None:
    """Why the claims' session has ended (deleted user, revoked token, password changed, ...),
    or None while it is their user's."""
    try:
        claims_user(claims)
    except TokenRejected as exc:
        return exc
    return None
