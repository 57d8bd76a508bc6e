"""The deployment checks (`manage.py check --deploy --fail-level WARNING`) refuse the settings that
would weaken Lia's wire security (RELIABILITY 6, 29, 33). The production settings pass them:
lia/tests/test_settings.py runs the command itself."""

import pytest
from django.core.checks import run_checks

from lia.checks import POSITIVE_DURATIONS

SECURE = {
    "COOKIE_SECURE": True,
    "COOKIE_SAMESITE": "lax",
    "CORS_ORIGINS": ["https://app.example.com"],
    "CORS_ALLOWED_ORIGINS": ["https://app.example.com"],
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "LLM_OFFLINE_FALLBACK": False,
}


def deploy_problems(settings, **overrides) -> set[str]:
    for name, value in {**SECURE, **overrides}.items():
        setattr(settings, name, value)
    messages = run_checks(include_deployment_checks=True)
    return {m.id for m in messages if m.is_serious(30) and m.id not in settings.SILENCED_SYSTEM_CHECKS}


def test_secure_settings_raise_nothing(settings):
    assert deploy_problems(settings) <= {"llm.W001"}  # providers without keys: llm's own concern


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"COOKIE_SECURE": False}, "lia.W001"),
        ({"COOKIE_SECURE": False, "COOKIE_SAMESITE": "none"}, "lia.E002"),
        ({"CORS_ORIGINS": ["*"]}, "lia.E003"),
        ({"CORS_ALLOW_ALL_ORIGINS": True}, "lia.E003"),
        ({"CORS_ORIGINS": ["https://app.example.com", "null"]}, "lia.E004"),
        ({"CORS_ALLOWED_ORIGIN_REGEXES": [r"^https://.*$"]}, "lia.W002"),
        ({"CORS_ORIGINS": ["http://app.example.com"]}, "lia.W003"),
        ({"CORS_ORIGINS": ["http://localhost:5173"]}, "lia.W004"),
        ({"SECURE_HSTS_SECONDS": 0}, "security.W004"),
        ({"SECURE_SSL_REDIRECT": False}, "security.W008"),
        ({"SESSION_COOKIE_SECURE": False}, "security.W010"),  # sessions app (admin-only middleware)
        ({"CSRF_COOKIE_SECURE": False}, "security.W016"),
        ({"DEBUG": True}, "security.W018"),
        ({"MIDDLEWARE": ["lia.middleware.RequestContextMiddleware"]}, "lia.W005"),
        # Found by an audit: every client had the proxy's address in the per-IP sign-in limit.
        ({"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"), "TRUSTED_PROXY_COUNT": 0}, "lia.W006"),
    ],
)
def test_insecure_settings_fail_the_deployment_checklist(settings, overrides, problem):
    assert problem in deploy_problems(settings, **overrides)


def test_without_credentials_a_wildcard_is_not_lias_concern(settings):
    assert "lia.E003" not in deploy_problems(settings, CORS_ORIGINS=["*"], CORS_ALLOW_CREDENTIALS=False)


def test_behind_a_proxy_that_is_counted_or_without_one_is_fine(settings):
    behind = ("HTTP_X_FORWARDED_PROTO", "https")
    assert "lia.W006" not in deploy_problems(settings, SECURE_PROXY_SSL_HEADER=behind, TRUSTED_PROXY_COUNT=1)
    assert "lia.W006" not in deploy_problems(settings, SECURE_PROXY_SSL_HEADER=None, TRUSTED_PROXY_COUNT=0)


def test_a_per_process_rate_limit_is_reported_not_failed(settings):
    for name, value in SECURE.items():
        setattr(settings, name, value)
    settings.REDIS_URL = ""

    messages = {m.id: m for m in run_checks(include_deployment_checks=True)}

    assert "lia.I001" in messages
    assert not messages["lia.I001"].is_serious(30)


def test_an_invalid_samesite_fails_even_outside_deployment(settings):
    settings.COOKIE_SAMESITE = "sometimes"

    assert "lia.E001" in {m.id for m in run_checks()}


@pytest.mark.parametrize(
    "name",
    [
        "RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE",
        "RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE",
        "RATE_LIMIT_LOGIN_FAILURES_PER_HOUR",
    ],
)
def test_a_rate_limit_below_one_fails_at_start_up(settings, name):
    setattr(settings, name, 0)

    assert "lia.E005" in {m.id for m in run_checks()}


@pytest.mark.parametrize("name", ["CHAT_CONTEXT_MAX_MESSAGES", "CHAT_CONTEXT_MAX_CHARS"])
def test_a_negative_chat_context_fails_at_start_up(settings, name):
    setattr(settings, name, -1)
    assert "lia.E006" in {m.id for m in run_checks()}

    setattr(settings, name, 0)  # no earlier turns: allowed
    assert "lia.E006" not in {m.id for m in run_checks()}


@pytest.mark.parametrize("name", POSITIVE_DURATIONS)
def test_a_duration_of_zero_fails_at_start_up(settings, name):
    """Found by an audit: CHAT_KEEPALIVE_SECONDS=0 (read as "off", as other settings' 0 is) sent
    100 000 keep-alive comments in 2 s, starving the reply; a timeout of 0 fails all it bounds."""
    setattr(settings, name, 0)

    assert f"{name} is 0: it must be more than 0 seconds." in {m.msg for m in run_checks() if m.id == "lia.E012"}


@pytest.mark.parametrize("seconds", [0, -1])
def test_a_send_timeout_below_one_tick_fails_at_start_up(settings, seconds):
    """.env.example: durations must be more than 0 but CHAT_TURN_WAIT_SECONDS' and
    CHAT_SAVE_RETRY_SECONDS'. CHAT_SEND_TIMEOUT_SECONDS (added beside lia.E012, the two changes
    crossed) was left out: 0 silently switched the bound off, and a negative value ended every
    chat stream at once, its client taken for one that had stopped reading."""
    settings.CHAT_SEND_TIMEOUT_SECONDS = seconds

    assert any("CHAT_SEND_TIMEOUT_SECONDS" in m.msg for m in run_checks() if m.id == "lia.E012")
