from datetime import UTC
from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import MinLengthValidator, RegexValidator
from django.db import models
from django.db.models import Value
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.hashers import django_hash_of
from accounts.validators import EmailAddressValidator, email_text

USERNAME_PATTERN = r"^[a-zA-Z0-9_-]+$"


class EmailFormField(forms.EmailField):
    """The admin forms' email field: NFKC-normalised and checked as the API's (accounts.apis)."""

    default_validators = [EmailAddressValidator()]

    def to_python(self, value: Any) -> str:
        return email_text(super().to_python(value))


class EmailField(models.EmailField):
    """An email column with the API's syntax (internationalised local parts too), so that the
    admin's forms take what the API does: staff could not save a user registered as
    josé@example.com, not even to deactivate them."""

    default_validators = [EmailAddressValidator()]

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": EmailFormField, **kwargs})


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    # Emails and usernames are unique and matched case-insensitively (CONTRACT §11 W16), by the
    # functional unique indexes on lower(). Both sides are lowered by the database, as the index
    # is: Python's lower() and SQLite's (ASCII letters only) disagree on other letters, so an
    # address such as ÉMILE@example.com never found itself on SQLite (no login, and a second
    # registration with it got past the check to the index's 409).

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """NFKC first, as every login path reads an address (the API's EmailField, the admin's
        forms and login, the failed-login lock): `createsuperuser` and code creating users stored
        a full-width look-alike as typed, an account no login could ever find."""
        return super().normalize_email(email_text(email) if email else email)

    def get_by_natural_key(self, email: str | None) -> "User":
        email = email_text(email or "")
        return self.alias(email_lower=Lower("email")).get(email_lower=Lower(Value(email)))

    def email_taken(self, email: str) -> bool:
        return self.alias(email_lower=Lower("email")).filter(email_lower=Lower(Value(email))).exists()

    def username_taken(self, username: str) -> bool:
        return self.alias(username_lower=Lower("username")).filter(username_lower=Lower(Value(username))).exists()

    def create_user(self, email: str, username: str, password: str | None = None, **extra: object) -> "User":
        user = self.model(email=self.normalize_email(email), username=username, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, username: str, password: str | None = None, **extra: object) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, username, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = EmailField(max_length=255)
    # CONTRACT §5.1's rules, for the admin's forms (the API's serializer checks them itself).
    username = models.CharField(max_length=50, validators=[MinLengthValidator(3), RegexValidator(USERNAME_PATTERN)])
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Tokens issued before this instant are rejected: set on a password change (save()),
    # deactivation and logout of a token that carries no jti.
    tokens_valid_after = models.DateTimeField(null=True, blank=True, editable=False)
    # Set by set_unusable_password, read by save(), as Django's `_password` is by set_password.
    _password_made_unusable = False

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_unique",
                violation_error_message="A user with this email already exists.",
            ),
            models.UniqueConstraint(
                Lower("username"),
                name="accounts_user_username_ci_unique",
                violation_error_message="A user with this username already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A password change (set_password, then save, as the admin's form, `changepassword` and
        services do) ends every earlier session. Lia's own tokens end anyway, being bound to the
        hash (accounts.tokens); the FastAPI backend's carry no such claim, and end here, by
        `tokens_valid_after`. Django clears `_password` for a hash upgrade, which is not a
        change; so does check_password below. (A hash assigned directly, or a bulk
        `update(password=...)`, bypasses this: it ends Lia's tokens, not FastAPI's.)"""
        if (self._password is not None or self._password_made_unusable) and not self._state.adding:
            self.tokens_valid_after = timezone.now()
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "tokens_valid_after"}
        super().save(*args, **kwargs)
        self._password_made_unusable = False

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        """Django's admin sign-ins are bound to the password hash; bind them to
        `tokens_valid_after` too, so that ending a user's sessions (`end_sessions`, the admin's
        action, deactivation) ends their admin sign-ins as it ends their tokens (found by a
        security audit: a leaked admin session cookie outlived them). Unchanged while no
        session has been ended, so existing sign-ins survive the upgrade."""
        if self.tokens_valid_after is None:
            return super()._get_session_auth_hash(secret=secret)
        epoch = self.tokens_valid_after.astimezone(UTC).isoformat()
        key_salt = "lia.accounts.User.get_session_auth_hash"
        return salted_hmac(key_salt, f"{self.password}|{epoch}", secret=secret, algorithm="sha256").hexdigest()

    def set_unusable_password(self) -> None:
        super().set_unusable_password()
        self._password_made_unusable = True

    def check_password(self, raw_password: str | None) -> bool:
        """Also accepts the FastAPI backend's hashes (stored without Django's prefix), and
        upgrades them to the preferred hasher on success."""
        imported = django_hash_of(self.password or "")
        if imported is None:
            return super().check_password(raw_password)
        self.password = imported
        if not super().check_password(raw_password):
            return False
        if self.password == imported:  # Django didn't re-hash it (same parameters): do it now
            self.set_password(raw_password)
            self._password = None  # an upgrade of the hash, not a change of the password
            self.save(update_fields=["password"])
        return True


class RevokedToken(models.Model):
    """An access token revoked before its expiry (logout, refresh). Rows past `expires_at`
    are useless and are purged as new ones are written."""

    jti = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="revoked_tokens")
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.jti
