"""The llm app's own errors. Adapters translate every vendor or transport error into one of these.

`str(exc)` is for logs: a short technical detail (provider, status, vendor error code), never a
key, a vendor's message text (OpenAI echoes part of a bad key in it) or the user's text.
`public_message` is a sentence safe to show a user, e.g. in the stream's `error` event.
"""


class LLMError(Exception):
    public_message = "An error occurred processing your request."
    # Worth another attempt before the first token (transient by nature).
    retryable = False

    def __init__(self, detail: str = "", *, provider: str | None = None) -> None:
        super().__init__(detail or self.public_message)
        self.provider = provider


class UnknownProvider(LLMError):
    public_message = "Unknown AI provider."


class ModelNotOffered(LLMError):
    """A model outside its provider's catalogue, where only those are served (LLM_CATALOGUE_ONLY)."""

    public_message = "This model is not available here."


class ProviderNotConfigured(LLMError):
    public_message = "The selected AI provider is not configured on this server."


class ProviderAuthError(LLMError):
    public_message = "The AI provider rejected this server's credentials."


class ProviderRateLimited(LLMError):
    public_message = "The AI provider is busy right now. Please try again in a moment."
    retryable = True

    def __init__(
        self, detail: str = "", *, provider: str | None = None, retry_after: float | None = None, retryable: bool = True
    ) -> None:
        super().__init__(detail, provider=provider)
        self.retry_after = retry_after  # seconds, when the vendor said
        self.retryable = retryable  # False for an exhausted quota: waiting won't help


class ProviderBadRequest(LLMError):
    """The vendor refused the request itself: unknown model, invalid parameter, blocked input."""

    public_message = "The AI provider could not handle this request (unknown model or invalid settings)."


class ProviderUnavailable(LLMError):
    """Connection failures, 5xx, broken or truncated streams, unusable answers."""

    public_message = "The AI provider is unavailable right now. Please try again later."
    retryable = True


class ProviderTimeout(ProviderUnavailable):
    public_message = "The AI provider took too long to respond. Please try again."
    # The user has already waited the whole timeout; another attempt would double it.
    retryable = False
