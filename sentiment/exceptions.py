"""Why an analysis failed, as a short reason that is safe to store in `details.error`."""


class SentimentError(Exception):
    """An analyzer could not produce a result. `reason` is short, stable and user-safe."""

    reason = "error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or self.reason)
        if reason:
            self.reason = reason


class AnalyzerUnavailable(SentimentError):
    reason = "unavailable"


class AnalyzerRateLimited(SentimentError):
    reason = "rate_limited"


class AnalyzerAuthFailed(SentimentError):
    reason = "auth"


class InvalidAnalyzerResponse(SentimentError):
    reason = "invalid_response"


def failure_reason(error: BaseException) -> str:
    """The short reason stored in `details.error` for any exception an analysis raised."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, SentimentError):
        return error.reason
    return "error"
