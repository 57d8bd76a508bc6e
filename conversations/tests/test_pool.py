"""Open streams don't pin database connections (RELIABILITY E8, 23): with a pool of N, 5 x N
simultaneous streams all complete, plain requests made meanwhile are served, and the server
never holds more than N connections."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from conversations.models import Message
from conversations.tests.conftest import body, parse_events, read_stream

pytestmark = pytest.mark.django_db(transaction=True)


def pool_size() -> int:
    pool = connections["default"].settings_dict.get("OPTIONS", {}).get("pool")
    return pool["max_size"] if isinstance(pool, dict) else 4


def backends_in_use() -> int:
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


async def test_five_times_the_pool_of_streams_complete(async_web, alice, scripted, settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 0  # one user opens them all here
    size = pool_size()
    scripted.reply(*[f"w{i} " for i in range(16)], delay=0.05)  # open while the GETs below run

    async def one(index: int) -> list:
        _, raw = await read_stream(async_web, alice, body(f"stream {index}"))
        return parse_events(raw)

    streams = asyncio.gather(*(one(i) for i in range(5 * size)))
    await asyncio.sleep(0.25)  # mid-stream for most of them
    in_use = await sync_to_async(backends_in_use)()
    # Meanwhile, plain requests still get a connection (RELIABILITY 23: no PoolTimeout, no 503).
    history = [(await async_web.get("/api/v1/chat/history", headers=alice.bearer)).status_code for _ in range(20)]
    results = await streams

    assert history == [200] * 20
    assert all(events[-1][1] == "done" for events in results)
    assert await sync_to_async(Message.objects.filter(role="assistant", status="complete").count)() == 5 * size
    assert in_use <= size
