from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that rejects numbers and booleans instead of stringifying them, as the
    FastAPI backend's validation did (a wrongly typed value is a 422, CONTRACT §4.4)."""

    default_error_messages = {
        **serializers.CharField.default_error_messages,
        "invalid": "Input should be a valid string",
        "required": "Field required",
        "null": "Input should be a valid string",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
