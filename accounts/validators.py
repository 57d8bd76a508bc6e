"""The password rules of CONTRACT §5.1, wherever a password is set: the API's register checks
them in its serializer (with the contract's own messages), and Django's password validation (the
admin's forms, `manage.py changepassword` and `createsuperuser`) through `ContractPasswordValidator`."""

import re

from django.core.exceptions import ValidationError

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
