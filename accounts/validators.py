"""The password rules of CONTRACT §5.1, wherever a password is set: the API's register checks
them in its serializer (with the contract's own messages), and Django's password validation (the
admin's forms, `manage.py changepassword` and `createsuperuser`) through `ContractPasswordValidator`.
And the API's email syntax (`EmailAddressValidator`)."""

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH = 8, 100
_REQUIRED = (("[A-Z]", "uppercase letter"), ("[a-z]", "lowercase letter"), ("[0-9]", "digit"))


def password_character_problem(password: str) -> str | None:
    """The contract's message for the first kind of character `password` lacks, or None."""
    for pattern, kind in _REQUIRED:
        if not re.search(pattern, password):
            return f"Password must contain at least one {kind}"
    return None


class ContractPasswordValidator:
    """8-100 characters, with an uppercase letter, a lowercase letter and a digit: so that staff
    can't set a password the API would refuse (found by an audit: the admin accepted `a`)."""

    def validate(self, password: str, user: object = None) -> None:
        if len(password) < PASSWORD_MIN_LENGTH:
            raise ValidationError(f"Password must have at least {PASSWORD_MIN_LENGTH} characters", code="too_short")
        if len(password) > PASSWORD_MAX_LENGTH:
            raise ValidationError(f"Password must have at most {PASSWORD_MAX_LENGTH} characters", code="too_long")
        if problem := password_character_problem(password):
            raise ValidationError(problem, code="too_simple")

    def get_help_text(self) -> str:
        return (
            f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters, with an uppercase letter, a lowercase"
            " letter and a digit."
        )


def email_text(value: str) -> str:
    """An email address as Lia reads it wherever one arrives (the API, the admin's forms and
    login, the failed-login lock, users made in code): NFKC-normalised, so that a full-width `a`
    in `ada@` is an `a`, not a look-alike account of its own."""
    return unicodedata.normalize("NFKC", value)


class EmailAddressValidator(EmailValidator):
    """Django's email syntax, with internationalised local parts (RFC 6531) as the FastAPI
    backend's validation (pydantic's EmailStr) accepted them: `josé@example.com` was a 422 at
    register and, worse, at login, locking out an account carried over with such an address
    (found by a conformance audit). A non-ASCII character of the local part may be a letter, digit,
    mark (not first), punctuation or symbol, as email-validator's rules have it: never a space, a
    control or an invisible format character. Each then counts as one more ordinary character of
    Django's dot-atom check."""

    def __call__(self, value: str) -> None:
        local, at, domain = value.rpartition("@")
        if at and not local.isascii():
            if not all(_international_atext(char, first=i == 0) for i, char in enumerate(local) if not char.isascii()):
                raise ValidationError(self.message, code=self.code, params={"value": value})
            value = "".join(char if char.isascii() else "a" for char in local) + at + domain
        super().__call__(value)


def _international_atext(char: str, *, first: bool) -> bool:
    category = unicodedata.category(char)[0]
    return category in "LNPS" or (category == "M" and not first)
