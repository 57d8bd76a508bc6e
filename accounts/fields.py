import re
from typing import Any

from rest_framework import serializers

# An unpaired UTF-16 surrogate ("\ud800" in JSON) is not a character: it can't be encoded as
# UTF-8, stored by PostgreSQL, hashed or logged.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def plain_text(value: str) -> bool:
    """Whether a string is text StrictCharField takes as it is: no NUL, no unpaired surrogate."""
    return "\x00" not in value and (value.isascii() or LONE_SURROGATE.search(value) is None)


class StrictCharField(serializers.CharField):
    """The string field of every input: rejects numbers and booleans instead of stringifying them,
    as the FastAPI backend's validation did (a wrongly typed value is a 422, CONTRACT §4.4), and
    text no database can store (NUL characters, which PostgreSQL refuses in text) or no encoder
    can write (unpaired surrogates), with a message that says so, before anything else sees it."""

    default_error_messages = {
        **serializers.CharField.default_error_messages,
        "invalid": "Input should be a valid string",
        "required": "Field required",
        "null": "Input should be a valid string",
        "nul_character": "Input should not contain NUL (\\u0000) characters",
        "lone_surrogate": "Input should be valid Unicode text (it contains an unpaired surrogate)",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            self.fail("nul_character")
        if LONE_SURROGATE.search(data):
            self.fail("lone_surrogate")
        return super().to_internal_value(data)
