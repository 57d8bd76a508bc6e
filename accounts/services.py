from typing import Any

import structlog
from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.exceptions import AccountExists, AccountRaceLost, InvalidCredentials, TokenRejected
from accounts.models import RevokedToken, User
from accounts.tokens import IssuedToken, token_expiry, token_issue

logger = structlog.get_logger("lia.accounts")


def user_register(*, email: str, username: str, password: str) -> User:
    # Hashed before the first query: a hash inside the transaction would hold a pooled
    # connection for as long as it waits for its turn and runs (accounts.hashers).
    user = User(email=User.objects.normalize_email(email), username=username)
    user.set_password(password)
    if User.objects.email_taken(email) or User.objects.username_taken(username):
        raise AccountExists()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        raise AccountRaceLost() from exc
    logger.info("auth.registered", user_id=user.pk)
    return user


def user_login(*, request: HttpRequest, email: str, password: str) -> User:
    """Check credentials through Django's backends: one password hash either way, so an unknown
    email and a wrong password take the same time; outdated hashes are upgraded."""
    user = authenticate(request, email=email, password=password)
    if user is None:
        logger.info("auth.login_failed")
        raise InvalidCredentials()
    # As Django's session login does, so the admin's user list says who signs in (found by an
    # audit: every chat user's "last login" was empty). An update, not save(): nothing else moves.
    user.last_login = timezone.now()
    User.objects.filter(pk=user.pk).update(last_login=user.last_login)
    logger.info("auth.login", user_id=user.pk)
    return user  # type: ignore[return-value]


def token_revoke(*, payload: dict[str, Any]) -> None:
    """Revoke one access token: by jti, or (legacy tokens without one) every token of its user
    issued so far."""
    now = timezone.now()
    user_id = int(payload["sub"])
    jti = payload.get("jti")
    if jti:
        RevokedToken.objects.filter(expires_at__lt=now).delete()
        RevokedToken.objects.get_or_create(jti=jti, defaults={"user_id": user_id, "expires_at": token_expiry(payload)})
    else:
        User.objects.filter(pk=user_id).update(tokens_valid_after=now)
    logger.info("auth.token_revoked", user_id=user_id)


def user_sessions_end(*, users: QuerySet[User]) -> int:
    """Refuse every token issued so far to these users (they can log in again). Returns how many."""
    count = users.update(tokens_valid_after=timezone.now())
    logger.info("auth.sessions_ended", users=count)
    return count


def user_deactivate(*, user: User) -> None:
    """Deactivate and end every session, for good: reactivating doesn't revive old tokens."""
    user.is_active = False
    user.tokens_valid_after = timezone.now()
    user.save(update_fields=["is_active", "tokens_valid_after"])
    logger.info("auth.user_deactivated", deactivated_user_id=user.pk)


def token_refresh(*, user: User, payload: dict[str, Any]) -> IssuedToken:
    """Spend the presented token and issue a new one with a full lifetime. Of two concurrent
    refreshes with the same token, only one succeeds."""
    jti = payload.get("jti")
    if not jti:
        # A legacy token names no session: refreshing it ends every one of its user's, once. The
        # epoch moves only from the one the user had when the token was accepted, so of two
        # concurrent refreshes the second is refused (its new epoch would end the first's token).
        now = timezone.now()
        moved = User.objects.filter(pk=user.pk, tokens_valid_after=user.tokens_valid_after).update(
            tokens_valid_after=now
        )
        if not moved:
            logger.warning("auth.refresh_rejected", user_id=user.pk, reason="sessions ended meanwhile")
            raise TokenRejected()
        user.tokens_valid_after = now  # the new token is bound to the new epoch
        logger.info("auth.token_revoked", user_id=user.pk)
        return token_issue(user=user)
    try:
        with transaction.atomic():
            RevokedToken.objects.create(jti=jti, user=user, expires_at=token_expiry(payload))
    except IntegrityError as exc:
        logger.warning("auth.refresh_rejected", user_id=user.pk, reason="token already spent")
        raise TokenRejected() from exc
    logger.info("auth.token_refreshed", user_id=user.pk)
    return token_issue(user=user)
