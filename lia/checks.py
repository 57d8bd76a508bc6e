"""Deployment checks for the settings that decide Lia's wire security."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register
from django.core.checks.security import base as django_security
from django.core.checks.security import csrf as django_csrf

# What lia.middleware's subclasses stand for, to Django's own checks.
DJANGO_MIDDLEWARE = {
    "lia.middleware.SecurityMiddleware": "django.middleware.security.SecurityMiddleware",
    "lia.middleware.XFrameOptionsMiddleware": "django.middleware.clickjacking.XFrameOptionsMiddleware",
}
DJANGO_MIDDLEWARE_CHECKS = (
    django_security.check_sts,
    django_security.check_sts_include_subdomains,
    django_security.check_sts_preload,
    django_security.check_content_type_nosniff,
    django_security.check_ssl_redirect,
    django_security.check_xframe_deny,
    django_security.check_referrer_policy,
    django_security.check_cross_origin_opener_policy,
    django_csrf.check_csrf_cookie_secure,
)


@register(Tags.security, deploy=True)
def check_django_middleware_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Django's deploy checks of HSTS, the SSL redirect, X_FRAME_OPTIONS, CSRF_COOKIE_SECURE and
    the like only run when the dotted paths of its Security, X-Frame-Options and CSRF middleware
    are in MIDDLEWARE. Lia installs the first two as subclasses (lia.middleware) and has the
    admin's csrf_protect for the third, so run those checks as if the originals were installed
    (their "not installed" warnings, W001-W003, are silenced in settings: lia.W005 stands in for
    the first two)."""
    installed = settings.MIDDLEWARE
    missing = [
        Warning(
            f"{ours} (or {theirs}) is not in MIDDLEWARE: responses lack the headers it sets.",
            id="lia.W005",
        )
        for ours, theirs in DJANGO_MIDDLEWARE.items()
        if ours not in installed and theirs not in installed
    ]
    settings.MIDDLEWARE = [
        *(DJANGO_MIDDLEWARE.get(name, name) for name in installed),
        "django.middleware.csrf.CsrfViewMiddleware",
    ]
    try:
        return missing + [message for check in DJANGO_MIDDLEWARE_CHECKS for message in check(app_configs)]
    finally:
        settings.MIDDLEWARE = installed


@register(Tags.security, deploy=True)
def check_auth_cookie(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if not settings.COOKIE_SECURE:
        problems.append(
            Warning(
                "The auth cookie is sent without Secure.",
                hint="Set COOKIE_SECURE=true when Lia is served over HTTPS.",
                id="lia.W001",
            )
        )
    if settings.COOKIE_SAMESITE.lower() == "none" and not settings.COOKIE_SECURE:
        problems.append(Error("COOKIE_SAMESITE=none requires COOKIE_SECURE=true.", id="lia.E002"))
    return problems


@register(Tags.security, deploy=True)
def check_cors(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With credentials allowed, a wildcard (or any page's) origin may read every user's data."""
    if not getattr(settings, "CORS_ALLOW_CREDENTIALS", False):
        return []
    problems: list[CheckMessage] = []
    origins = {origin.strip().lower() for origin in settings.CORS_ORIGINS}
    if "*" in origins or getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False):
        problems.append(
            Error(
                "CORS allows every origin ('*') while credentials are allowed.",
                hint="List the web client's origins exactly in CORS_ORIGINS.",
                id="lia.E003",
            )
        )
    if "null" in origins:
        problems.append(
            Error(
                "CORS_ORIGINS contains 'null', the origin of sandboxed frames and local files.",
                hint="Remove it: any page can produce a 'null' origin.",
                id="lia.E004",
            )
        )
    if getattr(settings, "CORS_ALLOWED_ORIGIN_REGEXES", None):
        problems.append(
            Warning(
                "CORS_ALLOWED_ORIGIN_REGEXES is set; Lia's Origin check (CSRF) only knows CORS_ORIGINS.",
                hint="List the origins in CORS_ORIGINS instead.",
                id="lia.W002",
            )
        )
    loopback = sorted(o for o in origins if _is_loopback(o))
    if loopback:
        problems.append(
            Warning(
                f"CORS_ORIGINS lists development origins: {', '.join(loopback)}.",
                hint="Set CORS_ORIGINS to the web client's production origins: any program on a user's "
                "machine serving these ports could otherwise read their data.",
                id="lia.W004",
            )
        )
    insecure = sorted(o for o in origins if o.startswith("http://") and not _is_loopback(o))
    if insecure:
        problems.append(
            Warning(
                f"CORS_ORIGINS has plain-http origins: {', '.join(insecure)}.",
                hint="A network attacker can act as a plain-http origin; use https:// origins in production.",
                id="lia.W003",
            )
        )
    return problems


@register(Tags.security, deploy=True)
def check_rate_limit_store(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if getattr(settings, "REDIS_URL", ""):
        return []
    return [
        Info(
            "Rate limits are counted per process (no REDIS_URL): each worker allows the full limit.",
            hint="Set REDIS_URL when running more than one process.",
            id="lia.I001",
        )
    ]


@register(Tags.security, deploy=True)
def check_proxy_client_address(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Behind a proxy, the socket peer is the proxy: without TRUSTED_PROXY_COUNT every client has
    its address, and the per-address sign-in limit counts them all as one."""
    if settings.SECURE_PROXY_SSL_HEADER is None or settings.TRUSTED_PROXY_COUNT > 0:
        return []
    return [
        Warning(
            "DJANGO_BEHIND_PROXY=true but TRUSTED_PROXY_COUNT=0: every client gets the proxy's address, so the "
            "per-address sign-in limit is shared by all of them and one client's attempts lock everyone out "
            "(429).",
            hint="Set TRUSTED_PROXY_COUNT to the number of proxies in front of Lia that append to "
            "X-Forwarded-For (1 for a single load balancer).",
            id="lia.W006",
        )
    ]


def _settings_below(names: tuple[str, ...], minimum: int, *, hint: str, id: str) -> list[CheckMessage]:
    return [
        Error(f"{name} must be at least {minimum}.", hint=hint, id=id)
        for name in names
        if getattr(settings, name) < minimum
    ]


@register(Tags.security)
def check_rate_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return _settings_below(
        (
            "RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE",
            "RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE",
            "RATE_LIMIT_LOGIN_FAILURES_PER_HOUR",
        ),
        1,
        hint="RATE_LIMIT_ENABLED=false turns the limits off; 0 would refuse every request.",
        id="lia.E005",
    )


@register()
def check_chat_context(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return _settings_below(
        ("CHAT_CONTEXT_MAX_MESSAGES", "CHAT_CONTEXT_MAX_CHARS"),
        0,
        hint="0 sends the model no earlier turns; a negative value would fail every later turn.",
        id="lia.E006",
    )


# Durations whose 0 (or less) is no "off": a keep-alive or checkpoint every 0 s is a loop that
# never waits (found by an audit: CHAT_KEEPALIVE_SECONDS=0 sent 100 000 keep-alives in 2 s and
# starved the reply), and a timeout of 0 fails every call, analysis or probe it bounds.
POSITIVE_DURATIONS = (
    "CHAT_KEEPALIVE_SECONDS",
    "CHAT_CHECKPOINT_SECONDS",
    "CHAT_STREAM_MAX_SECONDS",
    # Its 0 read as "off", and below 0 every chat stream was ended at once (lia.handler.BoundedSend
    # took any wait, none included, for a client that had stopped reading).
    "CHAT_SEND_TIMEOUT_SECONDS",
    "PASSWORD_HASH_WAIT_SECONDS",  # 0: every sign-in that has to wait is refused
    "LLM_CONNECT_TIMEOUT",
    "LLM_FIRST_TOKEN_TIMEOUT",
    "LLM_IDLE_TIMEOUT",
    "LLM_TOTAL_TIMEOUT",
    "SENTIMENT_TIMEOUT",
    "HEALTH_CHECK_TIMEOUT",
)


@register()
def check_durations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(f"{name} is {getattr(settings, name):g}: it must be more than 0 seconds.", id="lia.E012")
        for name in POSITIVE_DURATIONS
        if getattr(settings, name) <= 0
    ]


@register()
def check_database_pool(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """psycopg_pool refuses these sizes when it creates the pool, which is on the first query:
    the server would start, then answer every request that reads the database with a 500."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if not isinstance(pool, dict):  # no pool (SQLite), or psycopg_pool's defaults (pool=True)
        return []
    low, high = pool.get("min_size", 4), pool.get("max_size")
    problems: list[CheckMessage] = []
    if low < 0:
        problems.append(Error(f"DATABASE_POOL_MIN_SIZE is {low}: it can't be negative.", id="lia.E007"))
    if high is not None and high < 1:
        problems.append(Error(f"DATABASE_POOL_MAX_SIZE is {high}: it must be at least 1.", id="lia.E007"))
    elif high is not None and high < low:
        problems.append(
            Error(
                f"DATABASE_POOL_MAX_SIZE ({high}) is less than DATABASE_POOL_MIN_SIZE ({low}).",
                hint="The pool can't be created with these sizes, so every request that reads the database "
                "would fail: raise DATABASE_POOL_MAX_SIZE or lower DATABASE_POOL_MIN_SIZE (the defaults are 10 "
                "and 2).",
                id="lia.E007",
            )
        )
    if pool.get("timeout", 1) <= 0:
        problems.append(Error("DATABASE_POOL_TIMEOUT must be more than 0 seconds.", id="lia.E008"))
    if pool.get("max_waiting", 0) < 0:
        problems.append(Error("DATABASE_POOL_MAX_WAITING can't be negative (0: no limit).", id="lia.E008"))
    return problems


@register(Tags.security)
def check_cookie_samesite(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if settings.COOKIE_SAMESITE.lower() not in {"lax", "strict", "none"}:
        return [Error("COOKIE_SAMESITE must be lax, strict or none.", id="lia.E001")]
    return []


@register(Tags.security)
def check_jwt_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """CONTRACT §3.1: HS256/HS384/HS512, and a lifetime of 1 to 30 days."""
    problems = []
    if settings.JWT_ALGORITHM not in {"HS256", "HS384", "HS512"}:
        problems.append(Error("JWT_ALGORITHM must be HS256, HS384 or HS512.", id="lia.E010"))
    if not 1 <= settings.JWT_ACCESS_TOKEN_EXPIRE_DAYS <= 30:
        problems.append(Error("JWT_ACCESS_TOKEN_EXPIRE_DAYS must be between 1 and 30.", id="lia.E011"))
    return problems


def _is_loopback(origin: str) -> bool:
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    return host in {"localhost", "127.0.0.1", "::1"}
