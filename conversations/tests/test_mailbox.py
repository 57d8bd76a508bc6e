"""The keep-alive pump's mailbox (conversations.streaming._Mailbox): in order, woken by a put,
and a wait that times out (a keep-alive) loses nothing."""

import asyncio

import pytest

from conversations.streaming import _Mailbox


async def test_items_come_out_in_order_and_a_put_wakes_the_waiter():
    box = _Mailbox()
    waiting = asyncio.create_task(box.get())
    await asyncio.sleep(0)

    box.put("a")
    box.put("b")

    assert await waiting == "a"
    assert await box.get() == "b"


async def test_a_wait_that_times_out_loses_nothing():
    box = _Mailbox()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await box.get()

    box.put(1)

    assert await box.get() == 1
    assert box.waiter is None
