from django.core.checks import Info, Warning

from llm.checks import check_llm_providers


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_development_explains_that_keyless_providers_answer_offline(settings):
    settings.DEBUG = True
    settings.LLM_OFFLINE_FALLBACK = None

    messages = check_llm_providers()

    assert ids(messages) == ["llm.I001", "llm.I001"]
    assert all(isinstance(m, Info) for m in messages)
    assert "GEMINI_API_KEY" in messages[0].hint
    assert "default provider" in messages[0].msg


def test_production_warns_about_a_selected_provider_without_a_key(settings):
    settings.DEBUG = False
    settings.LLM_OFFLINE_FALLBACK = None
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, "openai": {**settings.LLM_PROVIDERS["openai"], "API_KEY": "k"}}

    messages = check_llm_providers()

    assert ids(messages) == ["llm.W001"]
    assert isinstance(messages[0], Warning)
    assert "'gemini' (the default provider)" in messages[0].msg


def test_no_messages_when_every_provider_has_its_key(settings):
    settings.DEBUG = False
    settings.LLM_OFFLINE_FALLBACK = None
    settings.LLM_PROVIDERS = {
        name: {**config, "API_KEY": "k"} if config.get("KEY_REQUIRED") else config
        for name, config in settings.LLM_PROVIDERS.items()
    }
    assert check_llm_providers() == []


def test_offline_fallback_forced_on_in_production_is_flagged(settings):
    settings.DEBUG = False
    settings.LLM_OFFLINE_FALLBACK = True
    assert "llm.W002" in ids(check_llm_providers())


def test_configuration_mistakes_are_errors(settings):
    settings.DEFAULT_LLM_PROVIDER = "anthropic"
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "Local LLM": {"BACKEND": "llm.providers.openai.OpenAICompatibleProvider", "BASE_URL": ""},
        "typo": {"BACKEND": "llm.providers.nope.Provider"},
    }

    found = ids(check_llm_providers())

    assert {"llm.E001", "llm.E002", "llm.E003", "llm.E004"} <= set(found)


def test_a_provider_listing_no_models_is_a_warning_when_only_those_are_served(settings):
    settings.DEBUG = False
    settings.LLM_CATALOGUE_ONLY = None
    settings.LLM_PROVIDERS = {
        **{name: {**config, "API_KEY": "k"} for name, config in settings.LLM_PROVIDERS.items()},
        "ollama": {"BACKEND": "llm.providers.openai.OpenAICompatibleProvider", "BASE_URL": "http://127.0.0.1:9"},
    }

    assert ids(check_llm_providers()) == ["llm.W003"]
    settings.LLM_PROVIDERS["ollama"]["MODELS"] = ["llama3.2"]
    assert ids(check_llm_providers()) == []
    settings.LLM_CATALOGUE_ONLY = False
    del settings.LLM_PROVIDERS["ollama"]["MODELS"]
    assert ids(check_llm_providers()) == []


def test_a_default_model_outside_the_catalogue_is_an_error_when_only_those_are_served(settings):
    """Every turn that names no model would end with an error (found by a review)."""
    settings.DEBUG = False
    settings.LLM_CATALOGUE_ONLY = None
    settings.LLM_PROVIDERS = {name: {**config, "API_KEY": "k"} for name, config in settings.LLM_PROVIDERS.items()}
    settings.DEFAULT_LLM_PROVIDER, settings.DEFAULT_LLM_MODEL = "openai", "gpt-4o-2024-08-06"

    messages = check_llm_providers()

    assert ids(messages) == ["llm.E006"]
    assert "gpt-4o-mini" in messages[0].hint
    settings.DEFAULT_LLM_MODEL = "gpt-4o-mini"
    assert ids(check_llm_providers()) == []
