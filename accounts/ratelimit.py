"""Sliding-window rate limits (CONTRACT §4.5), counted in Redis when the cache is Redis.

A request is allowed while the attempts in the last `window` seconds, this one and rejected
ones included, are at most `limit`. The answer carries the real wait until the next attempt
would be allowed. When Redis can't be reached the limiter falls back to counting in this
process (never unlimited, never a 500) and retries Redis after a cool-down
(RATE_LIMIT_REDIS_RETRY_SECONDS), so a hung Redis costs one socket timeout per cool-down.

django-ratelimit counts fixed windows offset by a hash of the key and has no degraded mode
(an unreachable Redis means 500, all-blocked or unlimited), so neither the contract's sliding
window with an exact Retry-After nor the fallback can be built on it.
"""

import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.cache import cache

logger = structlog.get_logger("lia.ratelimit")

# KEYS[1]: the window's sorted set. ARGV: now, window, limit, member, mode ("1": count this
# attempt; "2": count it only if it is within the limit, in the same step). Drops attempts older
# than the window, returns [count, wait_seconds, counted (0 or 1)].
SLIDING_WINDOW_LUA = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mode = ARGV[5]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local record = mode == '1' or (mode == '2' and count < limit)
if record then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('EXPIRE', key, math.ceil(window) + 1)
  count = count + 1
end
local allowed = limit
if not record then allowed = limit - 1 end
local counted = 0
if record then counted = 1 end
if count <= allowed then return {count, '0', counted} end
local pivot = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return {count, tostring(tonumber(pivot[2]) + window - now), counted}
"""
RECORD, RESERVE = "1", "2"


@dataclass(frozen=True)
class Attempt:
    """A counted attempt, for `rate_limit_refund`: its key, and its member of the Redis window
    (None: counted in this process, at `at`)."""

    key: str
    at: float
    member: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # whole seconds, ≥ 1 when not allowed
    attempt: Attempt | None = None  # the attempt counted, if one was


def _decision(count: int, allowed: int, wait: float, attempt: Attempt | None) -> Decision:
    if count <= allowed:
        return Decision(allowed=True, retry_after=0, attempt=attempt)
    return Decision(allowed=False, retry_after=max(1, math.ceil(wait)), attempt=attempt)


class MemoryWindows:
    """Per-process sliding windows: the embedded default, and the fallback when Redis is down."""

    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, deque[float]]] = {}  # key → (its window, attempt times)
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window: float, now: float, mode: str = RECORD) -> Decision:
        with self._lock:
            _, hits = self._hits.setdefault(key, (window, deque()))
            while hits and hits[0] <= now - window:
                hits.popleft()
            record = mode == RECORD or (mode == RESERVE and len(hits) < limit)
            if record:
                hits.append(now)
            count = len(hits)
            allowed = limit if record else limit - 1
            wait = hits[count - limit] + window - now if count > allowed else 0.0
            if len(self._hits) > self.MAX_KEYS:
                self._evict(now)
            return _decision(count, allowed, wait, Attempt(key, now) if record else None)

    def forget(self, attempt: Attempt) -> None:
        with self._lock:
            entry = self._hits.get(attempt.key)
            if entry is not None and attempt.at in entry[1]:
                entry[1].remove(attempt.at)

    def _evict(self, now: float) -> None:
        # Each key by its own window: an hour-long window outlives a minute-long one.
        stale = [key for key, (window, hits) in self._hits.items() if not hits or hits[-1] <= now - window]
        for key in stale:
            del self._hits[key]

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


class RateLimiter:
    def __init__(self) -> None:
        self.memory = MemoryWindows()
        self._redis_down_until = 0.0

    def hit(self, key: str, *, limit: int, window: float = 60.0, mode: str = RECORD) -> Decision:
        now = time.time()
        client = self._redis_client(now)
        if client is not None:
            member = uuid.uuid4().hex
            try:
                count, wait, counted = client.eval(
                    SLIDING_WINDOW_LUA, 1, cache.make_key(f"ratelimit:{key}"), now, window, limit, member, mode
                )
                attempt = Attempt(key, now, member) if int(counted) else None
                return _decision(int(count), limit if attempt else limit - 1, float(wait), attempt)
            except Exception as exc:  # any Redis failure: degrade, never fail the request
                self._redis_down_until = now + settings.RATE_LIMIT_REDIS_RETRY_SECONDS
                logger.warning("ratelimit.redis_unavailable", error=type(exc).__name__)
        return self.memory.hit(key, limit=limit, window=window, now=now, mode=mode)

    def forget(self, attempt: Attempt) -> None:
        if attempt.member is None:
            self.memory.forget(attempt)
            return
        client = self._redis_client(time.time())
        if client is None:
            return
        try:
            client.zrem(cache.make_key(f"ratelimit:{attempt.key}"), attempt.member)
        except Exception as exc:  # the attempt stays counted until it leaves the window
            self._redis_down_until = time.time() + settings.RATE_LIMIT_REDIS_RETRY_SECONDS
            logger.warning("ratelimit.redis_unavailable", error=type(exc).__name__)

    def _redis_client(self, now: float):  # type: ignore[no-untyped-def]
        if now < self._redis_down_until or not hasattr(cache, "client"):
            return None
        from django_redis import get_redis_connection

        return get_redis_connection("default")

    def reset(self) -> None:
        self.memory.clear()
        self._redis_down_until = 0.0


limiter = RateLimiter()


def rate_limit_check(*, scope: str, key: str, limit: int, window: float = 60.0) -> Decision:
    """Count an attempt for `key` in `scope`, and say whether it is within the limit; disabled
    limits always allow."""
    if (settled := _settled_uncounted(limit, window)) is not None:
        return settled
    decision = limiter.hit(f"{scope}:{key}", limit=limit, window=window, mode=RECORD)
    if not decision.allowed:
        logger.warning("ratelimit.rejected", scope=scope, retry_after=decision.retry_after)
    return decision


def rate_limit_reserve(*, scope: str, key: str, limit: int, window: float = 60.0) -> Decision:
    """Count an attempt for `key` in `scope` only if it is within the limit, in one atomic step,
    for a limit on outcomes known only afterwards (failed logins): the caller refunds the
    attempt (`rate_limit_refund`) once it turns out not to count. A refused attempt is not
    counted, and its wait is the real one. Concurrent attempts can't all pass a look made before
    any of them is counted."""
    if (settled := _settled_uncounted(limit, window)) is not None:
        return settled
    return limiter.hit(f"{scope}:{key}", limit=limit, window=window, mode=RESERVE)


def _settled_uncounted(limit: int, window: float) -> Decision | None:
    """The answer when nothing is to be counted: disabled limits allow, and a limit below 1 (a
    misconfiguration lia.E005 reports) refuses rather than crash."""
    if not settings.RATE_LIMIT_ENABLED:
        return Decision(allowed=True, retry_after=0)
    if limit < 1:
        return Decision(allowed=False, retry_after=max(1, math.ceil(window)))
    return None


def rate_limit_refund(decision: Decision) -> None:
    """Stop counting the attempt `decision` counted: for a request found afterwards not to be
    its key's (a chat turn whose token its user no longer accepts must not spend their limit)."""
    if decision.attempt is not None:
        limiter.forget(decision.attempt)
