"""The load client's ramp: when each stream starts, and what it records about its own timeline."""

import time

import pytest

from bench.client import run_streams, start_delay


def test_without_a_ramp_every_stream_starts_at_the_gate():
    assert [start_delay(i, 5, 0.0) for i in range(5)] == [0.0] * 5


def test_a_ramp_spreads_arrivals_evenly_over_it():
    delays = [start_delay(i, 4, 2.0) for i in range(4)]

    assert delays == [0.0, 0.5, 1.0, 1.5]


def test_a_thousand_streams_over_twenty_seconds_arrive_fifty_a_second():
    delays = [start_delay(i, 1000, 20.0) for i in range(1000)]

    assert delays[0] == 0.0
    assert delays[50] == pytest.approx(1.0)
    assert delays[-1] == pytest.approx(19.98)


async def test_ramped_streams_record_start_first_chunk_and_end_from_their_rounds_gate(fake_llm):
    fake_llm.script(chunks=3, delay=0.01)
    n, ramp = 4, 0.2
    job = {
        "kind": "streams",
        "target": "fake",
        "url": fake_llm.url,
        "n": n,
        "rounds": 2,
        "ramp_s": ramp,
        "tokens": [],
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        "connect_timeout": 5.0,
        "idle_timeout": 5.0,
        "stream_timeout": 5.0,
        "deadline": 10.0,
    }

    result = await run_streams(job)

    records = result["records"]
    assert [r["round"] for r in records] == [0] * n + [1] * n
    first_ended, second_ended = result["round_ended_at"]  # on the clock the runner's samplers read
    assert first_ended < second_ended <= time.monotonic()
    for i, record in enumerate(records):
        assert record["ok"], record
        assert record["start_at"] >= start_delay(i % n, n, ramp) - 0.005  # (the loop's clock resolution)
        assert record["start_at"] <= record["first_chunk_at"] <= record["end_at"]
    for round_ in (records[:n], records[n:]):
        starts = [r["start_at"] for r in round_]
        assert starts == sorted(starts)
