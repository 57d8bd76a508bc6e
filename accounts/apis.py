"""Auth endpoints (CONTRACT §5): register, login, me, refresh, logout."""

import re
from typing import Any

import structlog
from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import raw_token
from accounts.exceptions import InvalidCredentials, TokenRejected
from accounts.fields import StrictCharField
from accounts.limits import login_failure_reserve, sign_in_attempt
from accounts.models import USERNAME_PATTERN, User
from accounts.ratelimit import Decision, rate_limit_refund
from accounts.services import token_refresh, token_revoke, user_login, user_register
from accounts.tokens import IssuedToken, token_decode, token_issue, token_user
from accounts.validators import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    EmailAddressValidator,
    email_text,
    password_character_problem,
)

logger = structlog.get_logger("lia.accounts")

EMAIL_MESSAGES = {"invalid": "value is not a valid email address"}


def _length_messages(minimum: int, maximum: int) -> dict[str, str]:
    return {
        "min_length": f"String should have at least {minimum} characters",
        "blank": f"String should have at least {minimum} characters",
        "max_length": f"String should have at most {maximum} characters",
    }


class EmailField(StrictCharField):
    """An email address, NFKC-normalised as the failed-login lock and the admin's login form read
    one (a full-width `a` in `ada@` is an `a`, not a look-alike account of its own), then checked by
    EmailAddressValidator (internationalised local parts, as the FastAPI backend took them)."""

    default_error_messages = {**StrictCharField.default_error_messages, **EMAIL_MESSAGES}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(EmailAddressValidator(message=self.error_messages["invalid"]))

    def to_internal_value(self, data: Any) -> str:
        return email_text(super().to_internal_value(data))


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "username", "created_at"]


def throttled(decision: Decision) -> Decision:
    """`decision`, or the 429 of a refused one."""
    if not decision.allowed:
        raise Throttled(wait=decision.retry_after)
    return decision


def set_auth_cookie(response: Response, value: str, *, max_age: int) -> None:
    """The auth cookie, set (a token) or cleared (`""`, max_age 0): a clearing carries every
    attribute the cookie was set with (CONTRACT §3.2), which Django's delete_cookie doesn't
    (it drops HttpOnly, and Secure unless SameSite=None)."""
    response.set_cookie(
        settings.COOKIE_NAME,
        value,
        max_age=max_age,
        expires=None if max_age else "Thu, 01 Jan 1970 00:00:00 GMT",
        path="/",
        domain=settings.COOKIE_DOMAIN,
        secure=settings.COOKIE_SECURE,
        httponly=True,
        samesite=settings.COOKIE_SAMESITE.capitalize(),
    )


def token_response(*, user: User, token: IssuedToken, status: int = 200) -> Response:
    response = Response(
        {
            "access_token": token.value,
            "token_type": "bearer",
            "expires_in": token.expires_in,
            "user": UserOutputSerializer(user).data,
        },
        status=status,
        # The body carries the token: no browser or proxy cache may keep it.
        headers={"Cache-Control": "no-store"},
    )
    set_auth_cookie(response, token.value, max_age=token.expires_in)
    return response


class RegisterApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        email = EmailField(max_length=255, error_messages=_length_messages(1, 255))
        username = StrictCharField(
            min_length=3, max_length=50, trim_whitespace=False, error_messages=_length_messages(3, 50)
        )
        password = StrictCharField(
            min_length=PASSWORD_MIN_LENGTH,
            max_length=PASSWORD_MAX_LENGTH,
            trim_whitespace=False,
            error_messages=_length_messages(PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH),
        )

        def validate_username(self, value: str) -> str:
            if not re.fullmatch(USERNAME_PATTERN, value):
                raise serializers.ValidationError("Username may only contain letters, digits, underscores and hyphens")
            return value

        def validate_password(self, value: str) -> str:
            if problem := password_character_problem(value):
                raise serializers.ValidationError(problem)
            return value

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        throttled(sign_in_attempt(request._request))
        user = user_register(**serializer.validated_data)
        return token_response(user=user, token=token_issue(user=user), status=201)


class LoginApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        email = EmailField(max_length=255, error_messages=_length_messages(1, 255))
        password = StrictCharField(allow_blank=True, trim_whitespace=False)

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        throttled(sign_in_attempt(request._request))
        failure = throttled(login_failure_reserve(serializer.validated_data["email"]))
        try:
            user = user_login(request=request._request, **serializer.validated_data)
        except InvalidCredentials:
            raise  # counted
        except BaseException:
            rate_limit_refund(failure)  # not a failed guess (the database unavailable, ...)
            raise
        rate_limit_refund(failure)
        return token_response(user=user, token=token_issue(user=user))


class MeApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(UserOutputSerializer(request.user).data)


class RefreshApi(APIView):
    """No body: re-issues from the current access token and spends it (CONTRACT §5.4)."""

    def post(self, request: Request) -> Response:
        token = token_refresh(user=request.user, payload=request.auth)
        return token_response(user=request.user, token=token)


class LogoutApi(APIView):
    """Works without auth and without a body; revokes the presented token if it is valid."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        raw = raw_token(request)
        user_id = None
        if raw:
            try:
                payload = token_decode(raw)
                user_id = token_user(payload).pk  # revoked, expired or orphaned tokens need nothing more
                token_revoke(payload=payload)
            except TokenRejected:
                pass  # already unusable: nothing to revoke
        logger.info("auth.logout", user_id=user_id, revoked=user_id is not None)
        response = Response({"message": "Logged out"}, headers={"Cache-Control": "no-store"})
        set_auth_cookie(response, "", max_age=0)
        return response
