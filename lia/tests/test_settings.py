"""Production mode refuses weak secrets and passes `check --deploy` given HTTPS-style settings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    return subprocess.run(  # noqa: S603 - fixed argv, our own manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "lia.settings.base", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


STRONG = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "JWT_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "api.example.com",
    "CORS_ORIGINS": "https://app.example.com",
    # A production deployment has its providers' keys (llm.W001 warns about a missing one).
    "GEMINI_API_KEY": "g-production-key",
    "OPENAI_API_KEY": "sk-production-key",
}


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"DJANGO_SECRET_KEY": ""}, "SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "too-short"}, "DJANGO_SECRET_KEY is weak"),
        ({"DJANGO_SECRET_KEY": "a" * 60}, "DJANGO_SECRET_KEY is weak"),
        ({"JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY is not set"),
    ],
)
def test_production_refuses_to_start_with_a_weak_secret(overrides, complaint):
    result = manage("check", **{**STRONG, **overrides})

    assert result.returncode != 0
    assert complaint in result.stderr


def test_production_passes_the_deployment_checklist():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **STRONG)

    assert result.returncode == 0, result.stderr + result.stdout


def test_development_needs_no_environment():
    result = manage("check", DJANGO_DEBUG="true")

    assert result.returncode == 0, result.stderr


def test_production_settings_hash_with_argon2():
    from lia.settings import base

    assert base.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_every_variable_is_documented_in_env_example():
    import re

    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', (ROOT / "lia/settings/base.py").read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))

    assert read - documented == set()


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [({"JWT_ALGORITHM": "RS256"}, "lia.E010"), ({"JWT_ACCESS_TOKEN_EXPIRE_DAYS": "90"}, "lia.E011")],
)
def test_jwt_settings_outside_the_contract_are_refused(overrides, complaint):
    result = manage("check", DJANGO_DEBUG="true", **overrides)

    assert result.returncode != 0
    assert complaint in result.stderr
