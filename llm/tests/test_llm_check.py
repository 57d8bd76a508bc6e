import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = StringIO()
    call_command("llm_check", *args, stdout=out)
    return out.getvalue()


def test_checks_every_configured_provider_against_the_fakes(fake_llm_providers):
    fake_llm_providers.script(text="Hello from the fake!", thoughts=["Greeting. "])

    output = run("--prompt", "Hi there")

    for label in ("gemini (gemini-2.5-flash)", "openai (gpt-4o)", "compat (fake-small)", "offline (lia-offline)"):
        assert f"{label}: ok, first token" in output
    assert output.count("Hello from the fake!") == 3
    assert "tokens/s" in output
    assert "4 provider(s) checked, 4 ok" in output
    assert {r.model for r in fake_llm_providers.requests} == {"gemini-2.5-flash", "gpt-4o", "fake-small"}
    assert fake_llm_providers.requests[0].body["contents"][0]["parts"][0]["text"] == "Hi there"


def test_one_provider_and_model(fake_llm_providers):
    output = run("--provider", "openai", "--model", "gpt-4.1-mini")

    assert "openai (gpt-4.1-mini): ok" in output
    assert [r.model for r in fake_llm_providers.requests] == ["gpt-4.1-mini"]


def test_a_failing_provider_makes_the_command_fail(fake_llm_providers):
    out = StringIO()
    with pytest.raises(CommandError, match="1 failed"):
        call_command("llm_check", "--provider", "gemini", "--model", "gemini-2.5-flash-401", stdout=out)
    assert "gemini (gemini-2.5-flash-401): FAILED: ProviderAuthError" in out.getvalue()


def test_without_keys_only_the_offline_provider_is_checked():
    output = run()

    assert "gemini: skipped (no API key)" in output
    assert "offline (lia-offline): ok" in output
    assert "I'm **Lia**, running in offline mode" in output


def test_a_default_provider_without_a_key_fails_the_check_in_production(settings):
    """Found by an audit: "1 provider(s) checked, 1 ok" (the offline one) and exit 0, while every
    chat turn on the default provider ended with an error."""
    settings.LLM_OFFLINE_FALLBACK = False
    out = StringIO()

    with pytest.raises(CommandError, match="the default provider unusable"):
        call_command("llm_check", stdout=out)

    assert "gemini: FAILED: the default provider has no API key" in out.getvalue()


def test_one_provider_checked_is_not_failed_by_the_default_one(settings, fake_llm_providers):
    settings.LLM_OFFLINE_FALLBACK = False
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, "gemini": {**settings.LLM_PROVIDERS["gemini"], "API_KEY": ""}}

    output = run("--provider", "openai")

    assert "1 provider(s) checked, 1 ok" in output
    assert "Settings: production, no offline fallback." in output


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_max_tokens_must_be_positive(value):
    """The error names the argument and says what it wants (an audit saw "argument --max-tokens:
    invalid _positive value: '0'", naming a function of the command's)."""
    with pytest.raises(CommandError, match=f"--max-tokens: must be a whole number of at least 1, not '{value}'"):
        run("--max-tokens", value)


def test_unknown_provider_is_a_usage_error():
    with pytest.raises(CommandError, match="Unknown provider"):
        run("--provider", "nope")


def test_a_compatible_provider_declared_only_in_the_environment_works(fake_llm):
    """The real settings module, configured by environment variables alone: no code."""
    fake_llm.script(text="Hi from a compatible server.")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LLM_", "GEMINI_", "OPENAI_", "DJANGO_SETTINGS_MODULE"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="lia.settings.base",
        DJANGO_DEBUG="true",
        LLM_COMPATIBLE_PROVIDERS="localai",
        LLM_LOCALAI_BASE_URL=fake_llm.compat_base_url,
        LLM_LOCALAI_MODELS="tiny-chat=Tiny Chat",
        LLM_OFFLINE_DELAY_MS="0",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "llm_check", "--provider", "localai"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "localai (tiny-chat): ok" in result.stdout
    assert "Hi from a compatible server." in result.stdout
    assert fake_llm.last.path == "/compat/v1/chat/completions"
    assert fake_llm.last.body["model"] == "tiny-chat"
