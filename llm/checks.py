"""System checks for the LLM settings, run at start-up (`manage.py check`, runserver, daphne)."""

import importlib.util
import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Warning, register

from llm.catalogue import offered_models
from llm.registry import OFFLINE, catalogue_only, is_configured, offline_fallback_enabled, provider_configs

PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
KEY_ENV = {"gemini": "GEMINI_API_KEY", "openai": "OPENAI_API_KEY"}


def _backend_exists(dotted: str) -> bool:
    """Whether BACKEND's module can be found, without importing it (and its SDK: ~1 s)."""
    module, _, attribute = dotted.rpartition(".")
    try:
        return bool(module and attribute) and importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _key_env(name: str) -> str:
    return KEY_ENV.get(name, "LLM_" + name.upper().replace("-", "_") + "_API_KEY")


@register("llm")
def check_llm_providers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    configs = provider_configs()
    fallback = offline_fallback_enabled()
    default = settings.DEFAULT_LLM_PROVIDER

    if default not in configs:
        messages.append(
            Error(
                f"DEFAULT_LLM_PROVIDER is {default!r}, which is not a configured provider.",
                hint=f"Use one of: {', '.join(configs)}.",
                id="llm.E001",
            )
        )
    for name, config in configs.items():
        if not PROVIDER_NAME.match(name):
            messages.append(
                Error(f"LLM provider name {name!r} must be lower case letters, digits, '-' or '_'.", id="llm.E002")
            )
        if not _backend_exists(config.get("BACKEND", "")):
            messages.append(
                Error(f"LLM provider {name!r}: BACKEND {config.get('BACKEND')!r} can't be imported.", id="llm.E003")
            )
        if config.get("BACKEND", "").endswith("OpenAICompatibleProvider") and not config.get("BASE_URL"):
            env_name = "LLM_" + name.upper().replace("-", "_") + "_BASE_URL"
            messages.append(
                Error(f"OpenAI-compatible provider {name!r} has no base URL.", hint=f"Set {env_name}.", id="llm.E004")
            )
        if is_configured(config) and catalogue_only() and not offered_models(name):
            env_name = "LLM_" + name.upper().replace("-", "_") + "_MODELS"
            messages.append(
                Warning(
                    f"LLM provider {name!r} lists no models: with LLM_CATALOGUE_ONLY every turn sent to it"
                    " ends with an error.",
                    hint=f"Set {env_name}, or LLM_CATALOGUE_ONLY=false.",
                    id="llm.W003",
                )
            )
        if is_configured(config):
            continue
        selected = " (the default provider)" if name == default else ""
        if fallback:
            messages.append(
                Info(
                    f"LLM provider {name!r}{selected} has no API key: the offline provider answers for it.",
                    hint=f"Set {_key_env(name)} to use the real service.",
                    id="llm.I001",
                )
            )
        else:
            messages.append(
                Warning(
                    f"LLM provider {name!r}{selected} has no API key: every chat turn sent to it ends with an error.",
                    hint=f"Set {_key_env(name)}, or LLM_OFFLINE_FALLBACK=true to answer offline.",
                    id="llm.W001",
                )
            )
    if fallback and not settings.DEBUG and any(not is_configured(c) for c in configs.values()):
        messages.append(
            Warning(
                "LLM_OFFLINE_FALLBACK is on in production: users of a key-less provider get canned offline replies.",
                hint="Set the provider keys, or LLM_OFFLINE_FALLBACK=false.",
                id="llm.W002",
            )
        )
    default_model = settings.DEFAULT_LLM_MODEL
    if default in configs and catalogue_only() and default_model not in offered_models(default):
        messages.append(
            Error(
                f"DEFAULT_LLM_MODEL is {default_model!r}, which {default!r} does not list: with LLM_CATALOGUE_ONLY"
                " every turn that names no model ends with an error.",
                hint=f"Use one of: {', '.join(sorted(offered_models(default))) or 'none'}; or list it in its MODELS.",
                id="llm.E006",
            )
        )
    if OFFLINE not in configs and fallback:
        messages.append(Error("LLM_OFFLINE_FALLBACK is on but no 'offline' provider is configured.", id="llm.E005"))
    return messages
