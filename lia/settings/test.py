"""Test settings: override values (not the environment) so a developer's .env can't leak in.

DATABASE_URL and REDIS_URL still come from the environment: CI runs the same suite on the
embedded defaults and against PostgreSQL + Redis.
"""

from .base import *  # noqa: F403
from .base import CACHES, REDIS_URL

DEBUG = False
SECRET_KEY = "lia-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
JWT_SECRET_KEY = "lia-test-jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789abcdef"
SIMPLE_JWT = {**SIMPLE_JWT, "SIGNING_KEY": JWT_SECRET_KEY}  # noqa: F405
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
COOKIE_SECURE = True
CORS_ORIGINS = ["http://localhost:5173", "http://localhost:3000"]
CORS_ALLOWED_ORIGINS = CORS_ORIGINS
TRUSTED_PROXY_COUNT = 0
RATE_LIMIT_ENABLED = True
RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = 10
RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 20
RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = 20
CHAT_DAILY_TOKEN_BUDGET = 0

# Argon2 is slow by design; tests hash with MD5 but still verify every production format.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "accounts.hashers.Argon2PasswordHasher",
    "accounts.hashers.LegacyBCryptPasswordHasher",
]

if REDIS_URL:
    # A per-run prefix keeps parallel runs and leftovers from colliding in the shared Redis.
    import uuid

    CACHES["default"]["KEY_PREFIX"] = f"lia-test-{uuid.uuid4().hex[:8]}"

LOG_FORMAT = "json"

# --- LLM providers: no keys and no network, whatever the environment says. Key-less gemini and
# openai are served by a fast offline provider; llm.testing's fixtures point them at the fakes.
LLM_PROVIDERS = {
    "gemini": {
        "BACKEND": "llm.providers.gemini.GeminiProvider",
        "API_KEY": "",
        "KEY_REQUIRED": True,
        "BASE_URL": "",
        "OPTIONS": {},
    },
    "openai": {
        "BACKEND": "llm.providers.openai.OpenAIProvider",
        "API_KEY": "",
        "KEY_REQUIRED": True,
        "BASE_URL": "",
    },
    "offline": {"BACKEND": "llm.providers.offline.OfflineProvider", "OPTIONS": {"DELAY_MS": 1, "THOUGHTS": True}},
}
LLM_OFFLINE_FALLBACK = True
# Tests ask for models of their own; the catalogue rule has tests of its own (llm, conversations).
LLM_CATALOGUE_ONLY = False
LLM_CONNECT_TIMEOUT = 2.0
LLM_FIRST_TOKEN_TIMEOUT = 5.0
LLM_IDLE_TIMEOUT = 5.0
LLM_TOTAL_TIMEOUT = 30.0
LLM_MAX_RETRIES = 2
LLM_RETRY_BASE_DELAY = 0.01
LLM_MAX_RETRY_WAIT = 2.0

# --- Sentiment: tests never reach Google; the nlp_api tests point the endpoint at the local fake.
SENTIMENT_TIMEOUT = 10.0
GOOGLE_NL_API_ENDPOINT = ""
GOOGLE_NL_API_KEY = ""
GOOGLE_APPLICATION_CREDENTIALS = ""
GOOGLE_NL_API_VERSION = "v2"
GOOGLE_NL_API_TIMEOUT = 5.0
GOOGLE_NL_API_RETRY_TIMEOUT = 8.0

# Tests sweep when they mean to (the live-server tests run the ASGI entry point with it on).
CHAT_SWEEP_IN_SERVER = False
# SQLite: a file test database, not Django's default in-memory one. The in-memory database is one
# shared cache, whose table locks fail a writer at once ("database table is locked") instead of
# waiting like a file database's busy timeout: a turn starting while an aborted one is still
# being saved got a 503 there, never on a real database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import os
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"lia-test-{os.getpid()}.sqlite3")
    }
