"""Lia settings: everything is read here, through one environ.Env().

With no environment at all this gives a working development server on SQLite,
the local-memory cache and the in-memory channel layer. DATABASE_URL and
REDIS_URL switch to PostgreSQL and Redis; nothing else changes. `.env.example`
lists every variable.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from lia.logging import build_logging_config, configure_structlog

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class Env(environ.Env):
    """django-environ's, naming the variable whose value can't be read: its own error says only
    "invalid literal for int() with base 10: 'ten'" (found by an audit)."""

    def get_value(
        self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET, parse_default: bool = False
    ) -> Any:
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(f"{var} can't be read: {exc}") from exc


env = Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

VERSION = "0.1.0"

# --- Core -------------------------------------------------------------------

# manage.py defaults DJANGO_DEBUG to true (the dev command); the ASGI entry point does not.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# In production (DEBUG off) lia.apps refuses to start with a missing or weak key.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if DEBUG and not SECRET_KEY:
    SECRET_KEY = "django-insecure-lia-development-only-never-use-in-production"

# `manage.py serve` (the Docker image's command): server processes on one socket; 0 is one per core.
WEB_WORKERS = env.int("WEB_WORKERS", default=0)
# Which server they run: uvicorn (uvloop, httptools; lia.uvicorn_worker), or daphne.
WEB_SERVER = env.str("WEB_SERVER", default="uvicorn")

# Loopback names are always allowed: container health checks and operators on the host use them.
ALLOWED_HOSTS = [*env.list("DJANGO_ALLOWED_HOSTS", default=[]), "localhost", "127.0.0.1", "[::1]"]
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Django's CSRF check guards the admin's forms (the API uses the Origin check instead); its
# failures answer in the API's JSON error shape, not Django's HTML page.
CSRF_FAILURE_VIEW = "lia.errors.csrf_failure"

INSTALLED_APPS = [
    "daphne",  # ASGI runserver
    # First to be ready: in production it refuses weak secrets before another app's ready()
    # (the admin's autodiscover) stumbles on a missing one.
    "lia.apps.LiaConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our own static files, no CDN
    "channels",
    "accounts",
    "conversations",
    "llm",
    "sentiment",
    "health",
]

MIDDLEWARE = [
    # Django's own middleware, as subclasses that run without a thread hop per request (see
    # lia.middleware); sessions, the admin's user and messages on the admin's paths only.
    "lia.middleware.RequestContextMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "lia.middleware.SecurityMiddleware",
    "lia.middleware.OriginCheckMiddleware",
    "lia.middleware.BodySizeMiddleware",
    "lia.middleware.SessionMiddleware",
    "lia.middleware.CommonMiddleware",
    "lia.middleware.AuthenticationMiddleware",
    "lia.middleware.MessageMiddleware",
    "lia.middleware.XFrameOptionsMiddleware",
    "lia.middleware.MethodCheckMiddleware",
]

ROOT_URLCONF = "lia.urls"
ASGI_APPLICATION = "lia.asgi.application"
WSGI_APPLICATION = None
# API paths have no trailing slash and must never redirect (CONTRACT §2.1, §13).
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

# An empty DATABASE_URL (as in a copied .env.example) means the default, like an unset one.
DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
# Checked first: django-environ would warn with the whole URL, password and all.
if urlsplit(DATABASE_URL).scheme not in Env.DB_SCHEMES:
    raise ImproperlyConfigured(
        "DATABASE_URL is not a database URL: postgres://user:password@host:5432/name or sqlite:///path"
    )
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
del DATABASE_URL  # a setting would show it, password and all, on Django's debug pages
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].update(
        {
            # Django's backend, with a pool that replaces all its dead connections at once.
            "ENGINE": "lia.db.postgresql",
            # The pool replaces persistent connections; Django refuses both at once.
            "CONN_MAX_AGE": 0,
            # Drop connections PostgreSQL closed (restart, pg_terminate_backend) before use.
            "CONN_HEALTH_CHECKS": True,
        }
    )
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "application_name": env.str("DATABASE_APPLICATION_NAME", default="lia"),
            "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=5),
            # The kernel probes a connection idle for a minute and drops it when nothing answers
            # (a peer gone silent: a failover, a NAT's or load balancer's idle timeout), so the
            # pool's check sees it closed (lia.db.postgresql).
            "keepalives": 1,
            "keepalives_idle": 60,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "pool": {
                "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
                "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
                # Wait this long for a free connection, then fail cleanly (not Django's 30 s).
                "timeout": env.float("DATABASE_POOL_TIMEOUT", default=3.0),
                "max_waiting": env.int("DATABASE_POOL_MAX_WAITING", default=200),
                # Reconnect quickly after an outage (psycopg's default is 300 s).
                "reconnect_timeout": env.float("DATABASE_POOL_RECONNECT_TIMEOUT", default=10.0),
                "max_idle": 300,
            },
        }
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# A pooled connection back for less than this, with nothing received since, is handed out
# without the check query (lia.db.postgresql); 0 checks every connection before use.
DATABASE_POOL_CHECK_IDLE_SECONDS = env.float("DATABASE_POOL_CHECK_IDLE_SECONDS", default=5.0)


DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, channel layer ---------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="lia"),
            "OPTIONS": {
                # A Redis outage degrades the cache to misses instead of failing requests.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env.str("CACHE_KEY_PREFIX", default="lia")},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "lia"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# --- Auth -------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
# Login is by email through ModelBackend; accounts.User matches emails case-insensitively.
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
# Django's hashers, each hashing at most PASSWORD_HASH_CONCURRENCY passwords at a time per
# process, holding no pooled database connection meanwhile (accounts.hashers.password_hashing).
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2PasswordHasher",
    "accounts.hashers.PBKDF2PasswordHasher",
    "accounts.hashers.BCryptSHA256PasswordHasher",
    # Hashes imported from the FastAPI backend, raw (`$2b$…`, `$argon2id$…`) or prefixed
    # (`bcrypt$$2b$…`): verified, then upgraded to the first hasher on login.
    "accounts.hashers.LegacyBCryptPasswordHasher",
]
# Argon2 hashes one password on every core (8 lanes) in 100 MB: one at a time per process (one
# per core under `manage.py serve`) keeps a burst of sign-ins from starving everything else.
PASSWORD_HASH_CONCURRENCY = env.int("PASSWORD_HASH_CONCURRENCY", default=1)
# How long a sign-in waits for its turn to hash before it is a 503 with Retry-After.
PASSWORD_HASH_WAIT_SECONDS = env.float("PASSWORD_HASH_WAIT_SECONDS", default=10.0)
# The password rules of CONTRACT §5.1, for the admin's forms and manage.py's password commands
# (the API checks the same rules with the contract's messages). Django's own validators would
# reject passwords the contract accepts.
AUTH_PASSWORD_VALIDATORS = [{"NAME": "accounts.validators.ContractPasswordValidator"}]

JWT_SECRET_KEY = env.str("JWT_SECRET_KEY", default="")
if DEBUG and not JWT_SECRET_KEY:
    JWT_SECRET_KEY = "lia-development-jwt-secret-never-use-in-production"
JWT_ALGORITHM = env.str("JWT_ALGORITHM", default="HS256")
# Refused here, not only by the system check (lia.E010): simplejwt refuses a name it doesn't know
# with a traceback of its own when the URLs are first loaded, before any check runs.
if JWT_ALGORITHM not in ("HS256", "HS384", "HS512"):
    raise ImproperlyConfigured(f"JWT_ALGORITHM is {JWT_ALGORITHM!r}: use HS256, HS384 or HS512")
JWT_ACCESS_TOKEN_EXPIRE_DAYS = env.int("JWT_ACCESS_TOKEN_EXPIRE_DAYS", default=7)

SIMPLE_JWT = {
    "ALGORITHM": JWT_ALGORITHM,
    "SIGNING_KEY": JWT_SECRET_KEY,
    "ACCESS_TOKEN_LIFETIME": timedelta(days=JWT_ACCESS_TOKEN_EXPIRE_DAYS),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "LEEWAY": 0,
    "UPDATE_LAST_LOGIN": False,
}

COOKIE_NAME = env.str("COOKIE_NAME", default="access_token")
COOKIE_SECURE = env.bool("COOKIE_SECURE", default=True)
COOKIE_SAMESITE = env.str("COOKIE_SAMESITE", default="lax")
COOKIE_DOMAIN = env.str("COOKIE_DOMAIN", default="") or None

# --- CORS and the Origin check (CONTRACT §3.5, §3.6) -------------------------

CORS_ORIGINS = env.list("CORS_ORIGINS", default=["http://localhost:5173", "http://localhost:3000"])
CORS_ALLOWED_ORIGINS = CORS_ORIGINS
CORS_ALLOW_CREDENTIALS = True
CORS_ALLOW_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_ALLOW_HEADERS = [
    "accept",
    "accept-language",
    "authorization",
    "content-language",
    "content-type",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = ["X-Request-ID"]
CORS_PREFLIGHT_MAX_AGE = 600

# --- Request limits, rate limits ---------------------------------------------

# Bodies larger than this get a JSON 413 (a chat message is at most 10 000 chars).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=1024 * 1024)

RATE_LIMIT_ENABLED = env.bool("RATE_LIMIT_ENABLED", default=True)
RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = env.int("RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE", default=10)
RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = env.int("RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE", default=20)
# After a Redis failure, limits are counted in this process for this many seconds before Redis
# is tried again (a circuit breaker: a hung Redis costs one socket timeout per cool-down).
RATE_LIMIT_REDIS_RETRY_SECONDS = env.float("RATE_LIMIT_REDIS_RETRY_SECONDS", default=30.0)
# Failed logins per account per hour, from any IP (brute force against one account).
RATE_LIMIT_LOGIN_FAILURES_PER_HOUR = env.int("RATE_LIMIT_LOGIN_FAILURES_PER_HOUR", default=20)
# Number of reverse proxies in front of Lia whose X-Forwarded-For entries are trusted.
# 0 (default): the client IP is the socket peer and X-Forwarded-For is ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- DRF ----------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTCookieOrBearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["lia.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "lia.negotiation.JSONContentNegotiation",
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "lia.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": False,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- OpenAPI (drf-spectacular; the contract's details are added in lia/openapi.py) ------------

SPECTACULAR_SETTINGS = {
    "TITLE": "Lia API",
    "DESCRIPTION": (
        "Lia's HTTP API (v1): auth with a JWT (cookie or Bearer), the chat stream over Server-Sent "
        "Events, conversation history, and health. Errors are always "
        '`{"error": {"message": ..., "details"?: {...}}}`; validation errors are 422 and also carry '
        "a `detail` list."
    ),
    "VERSION": VERSION,
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["lia.openapi.postprocess"],
}

# --- Security headers (production values; see `manage.py check --deploy`) ----

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_BEHIND_PROXY", default=False) else None
)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Health probes come over plain HTTP from inside the platform.
SECURE_REDIRECT_EXEMPT = [r"^health(/.*)?$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # accounts.User.email is unique case-insensitively through a functional UniqueConstraint
    # on lower(email), which this check does not recognise.
    "auth.E003",
    # Django's checks for its Security, X-Frame-Options and CSRF middleware look for their
    # exact dotted paths: Lia installs subclasses (and no CSRF middleware: the admin's views
    # are csrf_protect'ed), and lia.checks runs the settings checks that depend on them.
    "security.W001",
    "security.W002",
    "security.W003",
    *env.list("DJANGO_SILENCED_SYSTEM_CHECKS", default=[]),
]

# --- I18n, static -------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Logging ------------------------------------------------------------------

LOG_FORMAT = env.str("LOG_FORMAT", default="dev" if DEBUG else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = build_logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)
configure_structlog()

# --- Health ---------------------------------------------------------------------

# Each dependency probe of /health and /health/ready gives up after this many seconds.
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=5.0)


# --- LLM providers (CONTRACT §14) ----------------------------------------------

DEFAULT_LLM_PROVIDER = env.str("DEFAULT_LLM_PROVIDER", default="gemini")
DEFAULT_LLM_MODEL = env.str("DEFAULT_LLM_MODEL", default="gemini-2.5-flash")

# Providers by name (llm.registry): BACKEND is imported lazily; KEY_REQUIRED providers without
# API_KEY are served offline or refused (see LLM_OFFLINE_FALLBACK). Order = /models order.
LLM_PROVIDERS: dict[str, dict] = {
    "gemini": {
        "BACKEND": "llm.providers.gemini.GeminiProvider",
        "API_KEY": env.str("GEMINI_API_KEY", default=""),
        "KEY_REQUIRED": True,
        # Empty: the SDK's default (https://generativelanguage.googleapis.com, API version v1).
        "BASE_URL": env.str("GEMINI_BASE_URL", default=""),
        "OPTIONS": {"API_VERSION": env.str("GEMINI_API_VERSION", default="")},
    },
    "openai": {
        "BACKEND": "llm.providers.openai.OpenAIProvider",
        "API_KEY": env.str("OPENAI_API_KEY", default=""),
        "KEY_REQUIRED": True,
        "BASE_URL": env.str("OPENAI_BASE_URL", default=""),
    },
}
# Any number of OpenAI-compatible servers (Ollama, vLLM, LM Studio, …), each its own provider:
#   LLM_COMPATIBLE_PROVIDERS=ollama
#   LLM_OLLAMA_BASE_URL=http://localhost:11434/v1   (required)
#   LLM_OLLAMA_API_KEY=                              (optional)
#   LLM_OLLAMA_MODELS=llama3.2=Llama 3.2,qwen2.5:7b  (id or id=Display name, comma-separated)
for _name in env.list("LLM_COMPATIBLE_PROVIDERS", default=[]):
    _prefix = "LLM_" + _name.upper().replace("-", "_") + "_"
    LLM_PROVIDERS[_name] = {
        "BACKEND": "llm.providers.openai.OpenAICompatibleProvider",
        "BASE_URL": env.str(_prefix + "BASE_URL", default=""),
        "API_KEY": env.str(_prefix + "API_KEY", default=""),
        "MODELS": env.list(_prefix + "MODELS", default=[]),
    }
LLM_PROVIDERS["offline"] = {
    "BACKEND": "llm.providers.offline.OfflineProvider",
    "OPTIONS": {
        "DELAY_MS": env.float("LLM_OFFLINE_DELAY_MS", default=25.0),
        "THOUGHTS": env.bool("LLM_OFFLINE_THOUGHTS", default=True),
    },
}
# Serve key-less providers with the offline one (true) or end their turns with an error
# event (false). Unset: on in development (DEBUG), off in production.
LLM_OFFLINE_FALLBACK = env.bool("LLM_OFFLINE_FALLBACK", default=None)

# Serve only the models GET /models lists (each provider's MODELS, or the contract's defaults):
# a turn asking for another ends with an error event before any provider is called. Unset: on
# in production, off in development. Off, any model name reaches the vendor with your key.
LLM_CATALOGUE_ONLY = env.bool("LLM_CATALOGUE_ONLY", default=None)

# Per call, in seconds: opening the connection, waiting for the first token (thinking models
# can be slow), silence between tokens, and the whole call. Retries (with backoff, honouring a
# vendor's Retry-After up to LLM_MAX_RETRY_WAIT) happen only before the first token.
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=5.0)
LLM_FIRST_TOKEN_TIMEOUT = env.float("LLM_FIRST_TOKEN_TIMEOUT", default=60.0)
LLM_IDLE_TIMEOUT = env.float("LLM_IDLE_TIMEOUT", default=30.0)
LLM_TOTAL_TIMEOUT = env.float("LLM_TOTAL_TIMEOUT", default=300.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=2)
LLM_RETRY_BASE_DELAY = env.float("LLM_RETRY_BASE_DELAY", default=0.5)
LLM_MAX_RETRY_WAIT = env.float("LLM_MAX_RETRY_WAIT", default=10.0)

# --- Chat ---------------------------------------------------------------------------

# How much of the conversation the model sees: the newest messages that fit in both bounds.
CHAT_CONTEXT_MAX_MESSAGES = env.int("CHAT_CONTEXT_MAX_MESSAGES", default=20)
CHAT_CONTEXT_MAX_CHARS = env.int("CHAT_CONTEXT_MAX_CHARS", default=32000)
# A reply streaming longer than this is stopped with an error event and stored as interrupted.
CHAT_STREAM_MAX_SECONDS = env.float("CHAT_STREAM_MAX_SECONDS", default=300.0)
# A `: keep-alive` comment goes out after this many seconds without an event (proxies' idle timeouts).
CHAT_KEEPALIVE_SECONDS = env.float("CHAT_KEEPALIVE_SECONDS", default=15.0)
# A client still connected that takes nothing of the stream for this long (its buffers full) is
# gone: the stream ends as at a disconnect, its reply stored as interrupted.
CHAT_SEND_TIMEOUT_SECONDS = env.float("CHAT_SEND_TIMEOUT_SECONDS", default=30.0)
# A new turn waits at most this long for an earlier reply in the same conversation to be stored;
# one still streaming then is superseded (stopped once its next checkpoint finds out, kept as interrupted).
CHAT_TURN_WAIT_SECONDS = env.float("CHAT_TURN_WAIT_SECONDS", default=10.0)
# A user may have at most this many replies streaming at once across conversations (0: no cap).
CHAT_MAX_CONCURRENT_STREAMS = env.int("CHAT_MAX_CONCURRENT_STREAMS", default=4)
# Tokens (prompt + completion, estimated where the provider reports none) a user may spend per
# UTC day; past it new turns get 429 until midnight UTC (0: no budget).
CHAT_DAILY_TOKEN_BUDGET = env.int("CHAT_DAILY_TOKEN_BUDGET", default=0)
# While a reply streams, its text so far is stored every this many seconds (also its heartbeat).
CHAT_CHECKPOINT_SECONDS = env.float("CHAT_CHECKPOINT_SECONDS", default=5.0)
# The server process sweeps orphaned `streaming` replies (a dead process's) at start and then
# every (3 x CHAT_CHECKPOINT_SECONDS + 10) / 2 seconds.
CHAT_SWEEP_IN_SERVER = env.bool("CHAT_SWEEP_IN_SERVER", default=True)
# How long storing a finished reply is retried while the database is unreachable.
CHAT_SAVE_RETRY_SECONDS = env.float("CHAT_SAVE_RETRY_SECONDS", default=30.0)
# The assistant's persona (CONTRACT §9.9).
CHAT_SYSTEM_PROMPT = env.str(
    "CHAT_SYSTEM_PROMPT",
    default=(
        "You are Lia, a warm and concise assistant. Answer helpfully and to the point, and use "
        "Markdown (lists, code blocks, emphasis) when it makes the answer clearer."
    ),
)

# --- Sentiment ----------------------------------------------------------------

# Upper bound in seconds on one message analysis (any method); past it the turn gets the
# neutral fallback. The Cloud NL retry budget below also bounds the worker thread.
SENTIMENT_TIMEOUT = env.float("SENTIMENT_TIMEOUT", default=10.0)
# Google Cloud Natural Language (method `nlp_api`). It counts as configured when any of the
# three is set; otherwise `nlp_api` answers the contract's "not configured" neutral result.
# Empty endpoint = Google's own; an explicit one (e.g. http://127.0.0.1:8085) without a key or
# credentials file is called anonymously (a local fake or an authenticating proxy).
GOOGLE_NL_API_ENDPOINT = env.str("GOOGLE_NL_API_ENDPOINT", default="")
GOOGLE_NL_API_KEY = env.str("GOOGLE_NL_API_KEY", default="")
GOOGLE_APPLICATION_CREDENTIALS = env.str("GOOGLE_APPLICATION_CREDENTIALS", default="")
GOOGLE_NL_API_VERSION = env.str("GOOGLE_NL_API_VERSION", default="v2")  # v1 | v2
# Seconds per HTTP attempt, and the whole budget including retries of 503/504.
GOOGLE_NL_API_TIMEOUT = env.float("GOOGLE_NL_API_TIMEOUT", default=5.0)
GOOGLE_NL_API_RETRY_TIMEOUT = env.float("GOOGLE_NL_API_RETRY_TIMEOUT", default=8.0)
