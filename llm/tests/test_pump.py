"""llm.Pump (behind Gemini's stream and the chat's keep-alive): in order, woken by an item, a
wait that times out (a keep-alive) loses nothing, and closing it closes the source."""

import asyncio

import pytest

from llm import Pump


async def paced(items, gate: asyncio.Event, closed: list):
    try:
        for item in items:
            await gate.wait()
            gate.clear()
            yield item
    finally:
        closed.append(True)


async def test_items_come_out_in_order_and_an_item_wakes_the_waiter():
    gate, closed = asyncio.Event(), []
    pump = Pump(paced(["a", "b"], gate, closed))
    waiting = asyncio.create_task(pump.get())
    await asyncio.sleep(0)

    gate.set()
    assert await waiting == "a"
    gate.set()
    assert await pump.get() == "b"
    with pytest.raises(StopAsyncIteration):
        await pump.get()
    await pump.close()


async def test_a_wait_that_times_out_loses_nothing():
    gate, closed = asyncio.Event(), []
    pump = Pump(paced([1], gate, closed))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await pump.get()

    gate.set()

    assert await pump.get() == 1
    await pump.close()


async def test_closing_closes_the_source_wherever_it_waits():
    gate, closed = asyncio.Event(), []
    pump = Pump(paced([1, 2], gate, closed))
    await asyncio.sleep(0)

    await pump.close()

    assert closed == [True]


async def test_what_the_source_raises_reaches_the_consumer():
    async def broken():
        yield 1
        raise ValueError("cut")

    pump = Pump(broken())
    assert await pump.get() == 1
    with pytest.raises(ValueError, match="cut"):
        await pump.get()
    await pump.close()
