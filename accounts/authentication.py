from typing import Any

import structlog
from django.conf import settings
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.exceptions import TokenRejected
from accounts.models import User
from accounts.tokens import token_decode, token_user


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


class JWTCookieOrBearerAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, dict[str, Any]] | None:
        raw = raw_token(request)
        if raw is None:
            return None
        try:
            payload = token_decode(raw)
            user = token_user(payload)
        except TokenRejected as exc:
            raise AuthenticationFailed(str(exc)) from exc
        structlog.contextvars.bind_contextvars(user_id=user.pk)
        return user, payload

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (never 403) with WWW-Authenticate: Bearer.
        return "Bearer"
