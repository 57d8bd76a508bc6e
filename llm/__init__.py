"""Everything Lia knows about talking to a language model. Other apps import only from here.

    resolved = resolve_provider("gemini", "gemini-2.5-flash")
    async for delta in resolved.provider.stream(messages, ChatOptions(model=resolved.model)):
        ...  # TextDelta | ThoughtDelta, then one Finish

Errors are LLMError subclasses with a user-safe `public_message`.
"""

from llm.catalogue import model_catalogue
from llm.exceptions import (
    LLMError,
    ModelNotOffered,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    UnknownProvider,
)
from llm.interface import ChatMessage, ChatOptions, Delta, Finish, Provider, TextDelta, ThoughtDelta, Usage
from llm.registry import ResolvedProvider, preload_providers, provider_names, resolve_provider
from llm.resilience import Pump

__all__ = [
    "ChatMessage",
    "ChatOptions",
    "Delta",
    "Finish",
    "LLMError",
    "ModelNotOffered",
    "Provider",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderNotConfigured",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailable",
    "Pump",
    "ResolvedProvider",
    "TextDelta",
    "ThoughtDelta",
    "UnknownProvider",
    "Usage",
    "model_catalogue",
    "preload_providers",
    "provider_names",
    "resolve_provider",
]
