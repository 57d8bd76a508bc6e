import pytest

from llm import (
    LLMError,
    ProviderNotConfigured,
    UnknownProvider,
    provider_names,
    resolve_provider,
)
from llm.providers.offline import OfflineProvider


def test_provider_names_accept_the_web_clients_providers_and_offline():
    assert provider_names() == ["gemini", "openai", "offline"]


@pytest.mark.parametrize("name", ["gemini", "openai"])
def test_development_serves_a_keyless_provider_offline(settings, name):
    settings.DEBUG = True
    settings.LLM_OFFLINE_FALLBACK = None

    resolved = resolve_provider(name, "some-model")

    assert isinstance(resolved.provider, OfflineProvider)
    assert (resolved.name, resolved.model, resolved.served_by, resolved.offline) == (
        name,
        "some-model",
        "offline",
        True,
    )


def test_production_refuses_a_keyless_provider(settings):
    settings.DEBUG = False
    settings.LLM_OFFLINE_FALLBACK = None

    with pytest.raises(ProviderNotConfigured) as caught:
        resolve_provider("gemini", "gemini-2.5-flash")

    assert isinstance(caught.value, LLMError)
    assert caught.value.public_message == "The selected AI provider is not configured on this server."


def test_explicit_fallback_setting_overrides_debug(settings):
    settings.DEBUG = False
    settings.LLM_OFFLINE_FALLBACK = True
    assert resolve_provider("openai", "gpt-4o").served_by == "offline"

    settings.DEBUG = True
    settings.LLM_OFFLINE_FALLBACK = False
    with pytest.raises(ProviderNotConfigured):
        resolve_provider("openai", "gpt-4o")


def test_the_offline_provider_is_always_available_by_name(settings):
    settings.DEBUG = False
    settings.LLM_OFFLINE_FALLBACK = False

    resolved = resolve_provider("offline", "lia-offline")

    assert resolved.served_by == "offline"
    assert resolved.offline is True


def test_unknown_provider_is_refused():
    with pytest.raises(UnknownProvider):
        resolve_provider("anthropic", "claude")


def test_one_instance_per_provider_until_settings_change(settings):
    first = resolve_provider("gemini", "a").provider
    assert resolve_provider("openai", "b").provider is first  # both served by the same offline instance

    settings.LLM_OFFLINE_FALLBACK = True  # any LLM_ setting change rebuilds
    assert resolve_provider("gemini", "a").provider is not first
