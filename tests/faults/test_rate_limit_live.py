"""Rate limits under concurrency against a real Redis (RELIABILITY 16): two daphne workers,
one Redis, a burst of simultaneous chat turns from one user."""

import asyncio
from collections import Counter

import httpx

from tests.faults.conftest import STREAM, bearer, chat_body, parse_events, register

LIMIT = 10
BURST = 50


async def burst(urls: list[str], token: str) -> list[tuple[httpx.Response, bytes]]:
    """BURST chat POSTs at once, spread over the workers; every body read to its end."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=BURST)) as client:

        async def one(index: int) -> tuple[httpx.Response, bytes]:
            url = urls[index % len(urls)] + STREAM
            async with client.stream("POST", url, json=chat_body(f"burst {index}"), headers=bearer(token)) as response:
                return response, await response.aread()

        return await asyncio.gather(*(one(index) for index in range(BURST)))


def test_a_burst_of_chat_turns_admits_exactly_the_limit(live, redis_server):
    """50 simultaneous turns, a limit of 10 a minute: exactly 10 stream a reply and 40 get 429
    with Retry-After in the contract's shape, although two processes answered them: the
    sliding window is counted atomically in Redis, not per process."""
    live.fake.script(text="Within the limit.", delay=0.01)
    workers = [
        # A generous pool timeout: this is about counting, not about the pool under a burst.
        # No per-user stream cap: one user opens them all, and this counts the rate limit alone.
        live.start(
            redis=redis_server,
            RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE=LIMIT,
            DATABASE_POOL_TIMEOUT=20,
            CHAT_MAX_CONCURRENT_STREAMS=0,
        )
        for _ in range(2)
    ]
    with workers[0].client() as client:
        token = register(client)

    answers = asyncio.run(burst([worker.url for worker in workers], token))

    assert Counter(response.status_code for response, _ in answers) == {200: LIMIT, 429: BURST - LIMIT}
    for response, body in answers:
        if response.status_code == 200:
            assert [name for name, _ in parse_events(body)][-1] == "done"
            continue
        retry_after = int(response.headers["Retry-After"])
        assert retry_after >= 1
        error = httpx.Response(429, content=body).json()
        assert error == {
            "error": {
                "message": "Rate limit exceeded. Please try again later.",
                "details": {"retry_after": retry_after},
            }
        }
    # Both workers answered, and every attempt was counted in the one window in Redis.
    assert {response.url.port for response, _ in answers} == {worker.port for worker in workers}
    redis = redis_server.client()
    (key,) = redis.keys(f"{live.cache_prefix}:*ratelimit:chat:*")
    assert redis.zcard(key) == BURST
