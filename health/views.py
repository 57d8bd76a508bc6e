"""/health, /health/live, /health/ready (CONTRACT §8): no auth, no rate limit."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from health.probes import probe_cache, probe_database

View = Callable[[HttpRequest], Awaitable[JsonResponse]]


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def get_only(view: View) -> View:
    @wraps(view)
    async def wrapper(request: HttpRequest) -> JsonResponse:
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"error": {"message": "Method Not Allowed"}}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        return await view(request)

    return wrapper


def _no_store(body: dict[str, Any], status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


@get_only
async def health(request: HttpRequest) -> JsonResponse:
    database, cache = await asyncio.gather(probe_database(), probe_cache())
    if database.status != "healthy":
        status = "unhealthy"
    elif cache.status != "healthy":
        status = "degraded"
    else:
        status = "healthy"
    return _no_store(
        {
            "status": status,
            "timestamp": now_iso(),
            "version": settings.VERSION,
            "services": {"database": database.as_dict(), "cache": cache.as_dict()},
        }
    )


@get_only
async def live(request: HttpRequest) -> JsonResponse:
    return _no_store({"status": "ok", "timestamp": now_iso()})


@get_only
async def ready(request: HttpRequest) -> JsonResponse:
    database = await probe_database()
    if database.status == "healthy":
        return _no_store({"status": "ready", "timestamp": now_iso()})
    timed_out = database.reason == "timeout"
    return _no_store(
        {
            "status": "not_ready",
            "reason": "database_timeout" if timed_out else "database_unavailable",
            "message": database.details["error"],
            "timestamp": now_iso(),
        },
        status=503,
    )
