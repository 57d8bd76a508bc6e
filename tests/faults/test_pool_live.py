"""Open streams don't pin database connections, under the production server against a real
PostgreSQL (RELIABILITY 23): three times the pool's size in 10 s streams, all open at once, while
the conversation list is asked for 20 times."""

import asyncio
import statistics
import time

import httpx

from tests.faults.conftest import STREAM, bearer, chat_body, parse_events, register

POOL = 3
STREAMS = 3 * POOL
CHUNKS, DELAY = 40, 0.25  # a 10 s reply
HISTORY = "/api/v1/chat/history"


async def open_streams(url: str, tokens: list[str], started: asyncio.Event) -> list[list]:
    """STREAMS chat turns at once, each read to its end; `started` is set once every one of
    them has had its first chunk (so all are open together)."""
    first_chunks = 0

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=STREAMS)) as client:

        async def one(index: int) -> list:
            nonlocal first_chunks
            body, counted = b"", False
            headers = bearer(tokens[index % len(tokens)])
            async with client.stream("POST", STREAM, json=chat_body(f"stream {index}"), headers=headers) as response:
                assert response.status_code == 200, await response.aread()
                async for piece in response.aiter_raw():
                    body += piece
                    if not counted and b"event: chunk" in body:
                        counted, first_chunks = True, first_chunks + 1
                        if first_chunks == STREAMS:
                            started.set()
            return parse_events(body)

        return await asyncio.gather(*(one(index) for index in range(STREAMS)))


async def list_conversations(url: str, token: str, started: asyncio.Event, backends) -> tuple[list, list, int]:
    """Once every stream is open: the history 20 times, one after another (status, seconds), and
    the most connections Lia held meanwhile (sampled before and after every request)."""
    await started.wait()
    answers, most = [], backends()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(20):
            began = time.perf_counter()
            response = await client.get(HISTORY, headers=bearer(token))
            answers.append((response.status_code, time.perf_counter() - began))
            most = max(most, await asyncio.to_thread(backends))
    return answers, most


def test_streams_do_not_hold_connections_while_the_list_is_served(live):
    live.fake.script(chunks=CHUNKS, delay=DELAY)
    lia = live.start(DATABASE_POOL_MIN_SIZE=1, DATABASE_POOL_MAX_SIZE=POOL)
    with lia.client() as client:
        tokens = [register(client) for _ in range(STREAMS // 3)]  # under the per-user cap of 4

    def backends() -> int:
        return len(live.postgres.backends(live.application_name))

    async def scenario() -> tuple[list, tuple[list, list, int]]:
        started = asyncio.Event()
        streams = asyncio.create_task(open_streams(lia.url, tokens, started))
        listing = await asyncio.wait_for(list_conversations(lia.url, tokens[0], started, backends), timeout=60)
        still_open = not streams.done()
        return await streams, (*listing, still_open)

    streamed, (answers, most, still_open) = asyncio.run(scenario())

    assert still_open  # the 20 requests were served while all the streams were open
    statuses = [status for status, _ in answers]
    latencies = [seconds for _, seconds in answers]
    assert statuses == [200] * 20  # no PoolTimeout's 503
    assert statistics.quantiles(latencies, n=20)[-1] < 0.5  # p95: served, not queued behind streams
    assert most <= POOL
    assert all([name for name, _ in events][-1] == "done" for events in streamed)
    assert all(sum(name == "chunk" for name, _ in events) == CHUNKS for events in streamed)
    assert live.rows("SELECT count(*) FROM conversations_message WHERE role = 'assistant' AND status = 'complete'") == [
        (STREAMS,)
    ]
    assert "PoolTimeout" not in lia.log()
