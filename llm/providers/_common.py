"""Small helpers shared by the SDK adapters."""

import json
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from django.utils import timezone

from llm.exceptions import ProviderUnavailable


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), if present."""
    if not headers:
        return None
    if value := headers.get("retry-after-ms"):
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - timezone.now()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def retry_after_from_google_details(details: Any) -> float | None:
    """Gemini puts the wait in a google.rpc.RetryInfo detail: {"retryDelay": "27s"}."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in error.get("details") or [] if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"\s*([0-9.]+)s\s*", str(item.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


def parse_json_object(text: str | None, *, provider: str) -> dict[str, Any]:
    """The JSON object a structured-output call answered, or ProviderUnavailable (retryable)."""
    try:
        value = json.loads(text or "")
    except ValueError:
        raise ProviderUnavailable(f"{provider}: structured output is not valid JSON", provider=provider) from None
    if not isinstance(value, dict):
        raise ProviderUnavailable(f"{provider}: structured output is not a JSON object", provider=provider)
    return value
