"""Production mode refuses weak secrets and passes `check --deploy` given HTTPS-style settings."""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_"))}
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
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is not set"),
        ({"DJANGO_SECRET_KEY": "too-short"}, "DJANGO_SECRET_KEY is weak"),
        ({"DJANGO_SECRET_KEY": "a" * 60}, "DJANGO_SECRET_KEY is weak"),
        ({"JWT_SECRET_KEY": "abcde" * 7}, "JWT_SECRET_KEY is weak"),  # passed, found by an audit
        ({"JWT_SECRET_KEY": "0123456789abcdef" * 3}, "JWT_SECRET_KEY is weak"),
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


SOURCES = ("manage.py", "lia", "accounts", "conversations", "llm", "sentiment", "health", "templates")


@pytest.mark.parametrize(("dotenv", "production"), [("DJANGO_DEBUG=false\n", True), ("", False)])
def test_manage_py_reads_debug_from_dot_env(tmp_path, dotenv, production):
    """README "Operations": production sets DJANGO_DEBUG=false "in the environment or in .env" for
    every command. Found by an audit: manage.py's development default was set before the settings
    read .env, so a .env saying false was overridden and every command ran in development mode.
    A copy of the project, so the test has a .env of its own."""
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy(source, tmp_path / name)
    (tmp_path / ".env").write_text(dotenv)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_"))}
    environment.pop("REDIS_URL", None)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=tmp_path,
        env={**environment, "DJANGO_SETTINGS_MODULE": "lia.settings.base"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    if production:
        assert result.returncode != 0
        assert "DJANGO_SECRET_KEY is not set. Production (DJANGO_DEBUG=false)" in result.stderr
    else:
        assert result.returncode == 0, result.stderr


def test_production_settings_hash_with_argon2():
    from lia.settings import base

    assert base.PASSWORD_HASHERS[0] == "accounts.hashers.Argon2PasswordHasher"


def test_every_variable_is_documented_in_env_example():
    import re

    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', (ROOT / "lia/settings/base.py").read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))

    assert read - documented == set()


def test_jwt_settings_outside_the_contract_are_refused():
    result = manage("check", DJANGO_DEBUG="true", JWT_ACCESS_TOKEN_EXPIRE_DAYS="90")

    assert result.returncode != 0
    assert "lia.E011" in result.stderr


def test_an_algorithm_set_in_code_outside_the_contract_is_a_check_error(settings):
    """The environment's is refused as the settings read it; a settings module's own is the
    check's (lia.E010)."""
    from lia.checks import check_jwt_settings

    settings.JWT_ALGORITHM = "RS256"

    assert [problem.id for problem in check_jwt_settings()] == ["lia.E010"]


POSTGRES = {"DJANGO_DEBUG": "true", "DATABASE_URL": "postgres://lia@db.invalid:5432/lia"}


@pytest.mark.parametrize(
    ("sizes", "complaint"),
    [
        ({"DATABASE_POOL_MIN_SIZE": "12"}, "DATABASE_POOL_MAX_SIZE (10) is less than DATABASE_POOL_MIN_SIZE (12)"),
        ({"DATABASE_POOL_MAX_SIZE": "0"}, "DATABASE_POOL_MAX_SIZE is 0: it must be at least 1"),
        ({"DATABASE_POOL_MAX_SIZE": "-3"}, "DATABASE_POOL_MAX_SIZE is -3: it must be at least 1"),
        ({"DATABASE_POOL_MIN_SIZE": "-1"}, "DATABASE_POOL_MIN_SIZE is -1: it can't be negative"),
        ({"DATABASE_POOL_TIMEOUT": "0"}, "DATABASE_POOL_TIMEOUT must be more than 0 seconds"),
        ({"DATABASE_POOL_MAX_WAITING": "-1"}, "DATABASE_POOL_MAX_WAITING can't be negative"),
    ],
)
def test_a_pool_psycopg_would_refuse_fails_the_checks(sizes, complaint):
    """Found by an audit: these passed `check --deploy`, the server started, and every login got a
    500 from psycopg_pool ("max_size must be greater or equal than min_size") on its first query."""
    result = manage("check", **POSTGRES, **sizes)

    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_default_pool_and_a_valid_one_pass_the_checks():
    for sizes in ({}, {"DATABASE_POOL_MIN_SIZE": "0", "DATABASE_POOL_MAX_SIZE": "1"}):
        result = manage("check", **POSTGRES, **sizes)

        assert result.returncode == 0, result.stderr


READ_DEFAULTS = """
import json
from lia.settings import base as s
database = s.DATABASES["default"]
names = [
    "DEBUG", "JWT_ACCESS_TOKEN_EXPIRE_DAYS", "DATA_UPLOAD_MAX_MEMORY_SIZE", "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE", "RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE",
    "RATE_LIMIT_LOGIN_FAILURES_PER_HOUR", "LLM_CONNECT_TIMEOUT", "LLM_FIRST_TOKEN_TIMEOUT",
    "CHAT_STREAM_MAX_SECONDS", "CHAT_KEEPALIVE_SECONDS", "CHAT_MAX_CONCURRENT_STREAMS",
    "CHAT_DAILY_TOKEN_BUDGET", "CHAT_SAVE_RETRY_SECONDS", "CHAT_SEND_TIMEOUT_SECONDS",
]
print(json.dumps({
    **{name: getattr(s, name) for name in names},
    "CONN_MAX_AGE": database["CONN_MAX_AGE"],
    "CONN_HEALTH_CHECKS": database["CONN_HEALTH_CHECKS"],
    "pool": database["OPTIONS"]["pool"],
    "cache": s.CACHES["default"]["OPTIONS"],
}))
"""


def test_the_defaults_are_the_reliability_bounds():
    """With nothing configured but the production services, the settings hold the numbers
    RELIABILITY.md and the contract give as defaults (a changed default must change this test)."""
    own = ("DJANGO_", "JWT_", "DATABASE_", "REDIS_", "RATE_LIMIT_", "LLM_", "CHAT_", "MAX_REQUEST_", "CACHE_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    services = {"DATABASE_URL": "postgres://lia@db.invalid:5432/lia", "REDIS_URL": "redis://cache.invalid:6379/0"}
    result = subprocess.run(  # noqa: S603 - fixed argv, our own settings
        [sys.executable, "-c", READ_DEFAULTS],
        cwd=ROOT,
        env={**clean, **services},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    defaults = json.loads(result.stdout)

    assert defaults["DEBUG"] is False  # 30
    assert defaults["JWT_ACCESS_TOKEN_EXPIRE_DAYS"] == 7  # 1, CONTRACT §3.1
    assert defaults["DATA_UPLOAD_MAX_MEMORY_SIZE"] == 1024 * 1024  # 15
    assert defaults["RATE_LIMIT_ENABLED"] is True  # 11, 16, CONTRACT §4.5
    assert defaults["RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE"] == 10
    assert defaults["RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE"] == 20
    assert defaults["RATE_LIMIT_LOGIN_FAILURES_PER_HOUR"] <= 100  # 11
    assert defaults["LLM_CONNECT_TIMEOUT"] <= 10  # 17
    assert defaults["LLM_FIRST_TOKEN_TIMEOUT"] <= 60
    assert defaults["CHAT_STREAM_MAX_SECONDS"] == 300
    assert defaults["CHAT_MAX_CONCURRENT_STREAMS"] == 4
    assert defaults["CHAT_DAILY_TOKEN_BUDGET"] == 0  # off unless configured
    assert defaults["CHAT_KEEPALIVE_SECONDS"] <= 15  # 22
    assert defaults["CHAT_KEEPALIVE_SECONDS"] < defaults["CHAT_SEND_TIMEOUT_SECONDS"] <= 60  # pitfall 9
    assert defaults["CHAT_SAVE_RETRY_SECONDS"] >= 30  # 28
    assert (defaults["CONN_MAX_AGE"], defaults["CONN_HEALTH_CHECKS"]) == (0, True)  # 27, pitfall 7
    assert defaults["pool"]["timeout"] <= 3  # 26
    assert defaults["pool"]["reconnect_timeout"] <= 10
    assert defaults["pool"]["max_waiting"] > 0
    assert defaults["cache"]["IGNORE_EXCEPTIONS"] is True  # 25
    assert defaults["cache"]["SOCKET_CONNECT_TIMEOUT"] <= 0.5
    assert defaults["cache"]["SOCKET_TIMEOUT"] <= 0.5


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        (
            {"DATABASE_URL": "postgres://lia@127.0.0.1:1/lia", "DATABASE_POOL_MAX_SIZE": "ten"},
            "DATABASE_POOL_MAX_SIZE can't be read: invalid literal for int()",
        ),
        ({"HEALTH_CHECK_TIMEOUT": "abc"}, "HEALTH_CHECK_TIMEOUT can't be read"),
        ({"DATABASE_URL": "postgres//nope:s3cret@db"}, "DATABASE_URL is not a database URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL is 'LOUD'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT is 'xml'"),
        # simplejwt's own TokenBackendError came first, before lia.E010 could say it (an audit)
        ({"JWT_ALGORITHM": "HS999"}, "JWT_ALGORITHM is 'HS999'"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_ALGORITHM is 'RS256'"),
    ],
)
def test_a_value_that_cant_be_read_is_named(variables, complaint):
    """Found by an audit: `invalid literal for int()`, `KeyError: 'ENGINE'` and `Unable to
    configure root logger`, with the variable named nowhere but in the traceback's settings line."""
    result = manage("check", DJANGO_DEBUG="true", **variables)

    assert result.returncode != 0
    assert complaint in result.stderr.strip().splitlines()[-1]
    assert "s3cret" not in result.stderr


def test_a_lower_case_log_level_is_read():
    assert manage("check", DJANGO_DEBUG="true", LOG_LEVEL="warning").returncode == 0


def test_a_random_key_of_digits_only_is_strong_enough():
    """A review computed that 31 % of random 32-digit keys were refused by a 10-character rule."""
    from lia.apps import secret_problem

    assert secret_problem("".join(secrets.choice("0123456789") for _ in range(32))) is None
    assert secret_problem(secrets.token_hex(16)) is None
