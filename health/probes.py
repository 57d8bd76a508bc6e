"""Dependency probes for the health endpoints: each one bounded by its own timeout, run in
a small dedicated thread pool so a hung dependency can't starve request handling."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections

_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health-probe")


@dataclass
class ProbeResult:
    status: str  # healthy | degraded | unhealthy
    latency_ms: float | None
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # timeout | unavailable, when not healthy

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "latency_ms": self.latency_ms, "details": self.details or None}


def _ping_database(alias: str) -> None:
    # A connection of its own: the probe runs in a worker thread and must not touch the
    # request's connection. With the psycopg pool this borrows from (and exercises) the pool.
    connection = connections.create_connection(alias)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def _ping_cache() -> None:
    if hasattr(cache, "client"):  # django-redis: ask Redis itself, past IGNORE_EXCEPTIONS
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()
    else:
        cache.set("health:probe", "ok", 5)
        if cache.get("health:probe") != "ok":
            raise RuntimeError("cache read back nothing")


async def _run(fn: Any, *args: Any, seconds: float) -> tuple[float, Exception | None]:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    error: Exception | None = None
    try:
        await asyncio.wait_for(loop.run_in_executor(_executor, fn, *args), seconds)
    except Exception as exc:  # a timeout or the dependency's own error; a cancellation goes on
        error = exc
    return round((time.perf_counter() - started) * 1000, 2), error


async def probe_database(alias: str = "default") -> ProbeResult:
    timeout = settings.HEALTH_CHECK_TIMEOUT
    details: dict[str, Any] = {"type": connections[alias].vendor}
    latency, error = await _run(_ping_database, alias, seconds=timeout)
    if error is None:
        return ProbeResult("healthy", latency, details)
    if isinstance(error, TimeoutError):
        details["error"] = f"Database health check timed out after {timeout:g}s"
        return ProbeResult("unhealthy", None, details, reason="timeout")
    details["error"] = "Database connection failed"
    return ProbeResult("unhealthy", None, details, reason="unavailable")


async def probe_cache() -> ProbeResult:
    is_redis = hasattr(cache, "client")
    details: dict[str, Any] = {"type": "redis" if is_redis else "memory"}
    latency, error = await _run(_ping_cache, seconds=settings.HEALTH_CHECK_TIMEOUT)
    if error is None:
        return ProbeResult("healthy", latency, details)
    details["error"] = "Cache check timed out" if isinstance(error, TimeoutError) else "Cache unavailable"
    return ProbeResult("degraded", None, details, reason="unavailable")
