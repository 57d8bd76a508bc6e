"""open_max: how many streams a level really held open at once."""

from bench.client import start_delay
from bench.report import open_max, summarize_streams


def stream(first_chunk_at, end_at, *, ok=True, round_=0):
    return {"ok": ok, "first_chunk_at": first_chunk_at, "end_at": end_at, "round": round_}


def test_streams_are_open_from_their_first_chunk_to_their_end():
    records = [stream(0.0, 10.0), stream(1.0, 5.0), stream(2.0, 3.0), stream(6.0, 7.0)]

    assert open_max(records) == 3


def test_a_stream_ending_as_another_gets_its_first_chunk_is_not_open_with_it():
    assert open_max([stream(0.0, 1.0), stream(1.0, 2.0)]) == 1


def test_only_completed_streams_with_a_chunk_count():
    records = [
        stream(0.0, 10.0),
        stream(1.0, 9.0, ok=False),  # e.g. an error event after some chunks
        {"ok": False, "first_chunk_at": None, "end_at": 3.0, "round": 0},  # http_503
        {"ok": False, "first_chunk_at": None, "end_at": None, "round": 0},  # cancelled before its start
        stream(None, 8.0),  # done without a chunk
    ]

    assert open_max(records) == 1


def test_rounds_are_counted_apart():
    records = [stream(0.0, 10.0, round_=0), stream(0.0, 10.0, round_=1), stream(2.0, 4.0, round_=1)]

    assert open_max(records) == 2


def test_no_completed_stream_means_none_open():
    assert open_max([]) == 0
    assert open_max([stream(None, None, ok=False)]) == 0


def test_streams_held_longer_than_the_ramp_are_all_open_together():
    n, ramp, length = 1000, 20.0, 30.0
    held = [stream(start_delay(i, n, ramp) + 0.1, start_delay(i, n, ramp) + length) for i in range(n)]
    short = [stream(start_delay(i, n, ramp) + 0.1, start_delay(i, n, ramp) + 0.29) for i in range(n)]

    assert open_max(held) == n
    assert open_max(short) == 10  # 50 arrivals a second, each open for 0.19 s


def test_the_summary_carries_open_max():
    result = {
        "records": [
            {**stream(0.1, 1.0), "error": None, "ttft_s": 0.1, "headers_s": 0.05, "total_s": 1.0, "chunks": 20},
            {**stream(0.2, 1.1), "error": None, "ttft_s": 0.1, "headers_s": 0.05, "total_s": 1.0, "chunks": 20},
        ],
        "round_spans_s": [1.1],
        "client_loop_lag": {"p50_ms": 0.1, "max_ms": 1.0},
    }

    assert summarize_streams(result)["open_max"] == 2
