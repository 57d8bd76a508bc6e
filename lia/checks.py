"""Deployment checks for the settings that decide Lia's wire security."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_auth_cookie(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
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
    if "*" in settings.CORS_ORIGINS:
        problems.append(
            Error(
                "CORS_ORIGINS contains '*' while credentials are allowed.",
                hint="List the web client's origins exactly.",
                id="lia.E003",
            )
        )
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
        problems.append(Error("JWT_ALGORITHM must be HS256, HS384 or HS512.", id="lia.E004"))
    if not 1 <= settings.JWT_ACCESS_TOKEN_EXPIRE_DAYS <= 30:
        problems.append(Error("JWT_ACCESS_TOKEN_EXPIRE_DAYS must be between 1 and 30.", id="lia.E005"))
    return problems
