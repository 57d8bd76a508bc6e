"""Providers by name, built from settings.LLM_PROVIDERS, and the routing rule.

Each entry names a BACKEND class (imported lazily with import_string) and its API_KEY,
BASE_URL, MODELS and OPTIONS. Instances are cached: one per provider per process, so the SDK
clients they hold are shared by every request (ECOSYSTEM §5.5: a client per request costs
tens of ms on the event loop). Changing an LLM setting (tests) drops the cache.

Routing: a provider that needs a key and has none is served by the offline provider when the
offline fallback is on (LLM_OFFLINE_FALLBACK, which defaults to DEBUG); otherwise resolving it
raises ProviderNotConfigured, which the chat turns into an `error` event.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from llm.exceptions import ModelNotOffered, ProviderNotConfigured, UnknownProvider
from llm.interface import Provider

OFFLINE = "offline"
logger = structlog.get_logger("llm")

_instances: dict[str, Provider] = {}


@dataclass(frozen=True)
class ResolvedProvider:
    provider: Provider
    name: str  # as requested, e.g. "gemini"
    model: str  # as requested
    served_by: str  # the provider actually answering: "gemini", "openai", "offline", "ollama", …
    offline: bool


def provider_configs() -> dict[str, dict[str, Any]]:
    return dict(settings.LLM_PROVIDERS)


def provider_names() -> list[str]:
    """Names accepted in the chat request's `provider` field, in catalogue order."""
    return list(provider_configs())


def is_configured(config: Mapping[str, Any]) -> bool:
    """A provider can be called: it has its key, or it needs none (offline, most local servers)."""
    return bool(config.get("API_KEY")) or not config.get("KEY_REQUIRED", False)


def offline_fallback_enabled() -> bool:
    explicit = getattr(settings, "LLM_OFFLINE_FALLBACK", None)
    return settings.DEBUG if explicit is None else bool(explicit)


def catalogue_only() -> bool:
    """Whether a turn may ask only for the models GET /models lists (LLM_CATALOGUE_ONLY; unset:
    in production, not in development): any other name would be sent to the vendor with the
    operator's key, the priciest model it can reach included."""
    explicit = getattr(settings, "LLM_CATALOGUE_ONLY", None)
    return not settings.DEBUG if explicit is None else bool(explicit)


def get_provider(name: str) -> Provider:
    """The cached provider instance for `name`, whatever its configuration state."""
    provider = _instances.get(name)
    if provider is None:
        configs = provider_configs()
        if name not in configs:
            raise UnknownProvider(f"unknown provider {name!r}")
        config = configs[name]
        backend = import_string(config["BACKEND"])
        provider = backend(name=name, config=config)
        _instances[name] = provider
    return provider


def preload_providers() -> list[str]:
    """Build every provider that can be called now, importing its SDK (`openai` and
    `google-genai` take ~0.4 s each to import): a server process does it at start, so no
    user's first chat turn waits for it. Returns the names built."""
    built = []
    for name, config in provider_configs().items():
        if not is_configured(config):
            continue
        try:
            get_provider(name).preload()
        except Exception as exc:  # the turns sent to it will say what is wrong
            logger.warning("llm.preload_failed", provider=name, error=type(exc).__name__, detail=str(exc)[:200])
        else:
            built.append(name)
    return built


def resolve_provider(name: str, model: str, *, offered_only: bool = True) -> ResolvedProvider:
    """The provider that serves `model` of `name`. `offered_only=False` lifts LLM_CATALOGUE_ONLY
    for an operator's own calls (re-scoring stored conversations, checking a model), which no
    user's request chooses."""
    configs = provider_configs()
    if name not in configs:
        raise UnknownProvider(f"unknown provider {name!r}", provider=name)
    if offered_only and catalogue_only():
        from llm.catalogue import offered_models  # it reads the registry's configs

        if model not in offered_models(name):
            raise ModelNotOffered(f"{name}: {model!r} is not in the catalogue", provider=name)
    if is_configured(configs[name]):
        return ResolvedProvider(get_provider(name), name, model, served_by=name, offline=name == OFFLINE)
    if offline_fallback_enabled() and OFFLINE in configs:
        return ResolvedProvider(get_provider(OFFLINE), name, model, served_by=OFFLINE, offline=True)
    raise ProviderNotConfigured(f"{name} has no API key", provider=name)


def reset_providers() -> None:
    """Forget the cached instances (and their SDK clients); the next call rebuilds them."""
    _instances.clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("LLM_") or setting == "DEBUG":
        reset_providers()
