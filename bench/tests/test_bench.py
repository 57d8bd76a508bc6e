"""The benchmark machinery end to end at a tiny level: the fake, daphne on SQLite, the load client,
the history phase, the report. No timing assertions: timing belongs to the benchmark itself."""

import json
import os
from pathlib import Path

import pytest

from bench.__main__ import main, parse
from bench.report import percentile, table
from bench.runner import Bench, Config, RSSSampler


def test_two_streams_embedded(tmp_path):
    shm = Path("/dev/shm")  # noqa: S108  no fsync cost for the migrations, where there is one
    config = Config(
        levels=[2],
        embedded=True,
        sqlite_dir=str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None,
        min_samples=2,
        warmup=2,
        prefill=3,
        history_seconds=1.0,
        history_concurrency=2,
        level_deadline=60.0,
        stream_timeout=30.0,
        fresh_server=False,
        floor=True,
        quiet=True,
        results_dir=tmp_path,
    )

    report = Bench(config).run()

    assert report["meta"]["prefilled_conversations"] == 3  # one user (two streams each), 3 apiece
    fake = report["fake"]["2"]
    assert fake["ok"] == 2
    assert fake["chunks_per_stream"] == 20
    (run,) = report["runs"]
    assert run["server"] == "uvicorn"  # the production default
    (level,) = run["levels"]
    assert level["lia"]["n"] == 2
    assert level["lia"]["errors"] == {}
    assert level["lia"]["ok"] == 2
    assert 1 <= level["lia"]["open_max"] <= 2
    assert level["lia"]["chunks_per_stream"] == 20
    assert level["lia"]["ttft_ms"]["p50"] is not None
    assert level["added_ttft_ms"]["p50"] is not None
    assert level["floor"]["ok"] == 2  # the same arrivals against bench.floor
    assert level["floor"]["chunks_per_stream"] == 20
    assert set(level["floor_added_ttft_ms"]) == set(level["over_floor_ttft_ms"]) == {"p50", "p95", "p99"}
    assert level["rss"]["peak_mb"] > 0
    assert level["rss"]["first_round_peak_mb"] == level["rss"]["peak_mb"]  # one round
    assert level["pg"] is None  # embedded: no PostgreSQL to sample
    assert run["history"]["requests"] > 0
    assert run["history"]["errors"] == {}
    assert "uvicorn" in table(report)
    assert "open max" in table(report)
    assert "Lia over floor" in table(report)
    json.dumps(report)  # the JSON file's content


def test_cli_parses_lists():
    config = parse(["--levels", "1,50", "--server", "daphne,uvicorn", "--workers", "1,2", "--embedded", "--floor"])

    assert config.levels == [1, 50]
    assert config.floor
    assert config.servers == ["daphne", "uvicorn"]
    assert config.workers == [1, 2]
    assert config.embedded
    assert not config.floor_durable
    assert callable(main)


def test_cli_the_durable_floor_needs_postgresql(capsys):
    assert parse(["--floor", "--floor-durable"]).floor_durable
    with pytest.raises(SystemExit):
        parse(["--floor-durable", "--embedded"])
    assert "--floor-durable needs PostgreSQL" in capsys.readouterr().err


def test_cli_ramp_and_the_deadlines_it_implies():
    default = parse([])
    held = parse(["--levels", "1000", "--ramp-seconds", "20", "--chunks", "60", "--delay-ms", "500"])

    assert default.ramp_seconds == 0
    assert default.stream_timeout_s == pytest.approx(120.2)  # 120 s beyond 20 chunks x 10 ms
    assert default.deadline_s == pytest.approx(180.2)
    assert held.ramp_seconds == 20
    assert held.stream_timeout_s == pytest.approx(150)  # 120 s beyond 60 chunks x 500 ms
    assert held.deadline_s == pytest.approx(230)  # the last arrival at 20 s gets its full stream timeout
    assert parse(["--ramp-seconds", "20", "--level-deadline", "300"]).deadline_s == 300


def test_cli_refuses_a_deadline_inside_the_ramp(capsys):
    with pytest.raises(SystemExit):
        parse(["--ramp-seconds", "20", "--level-deadline", "15"])

    assert "--level-deadline" in capsys.readouterr().err


def test_percentile_is_nearest_rank():
    values = [0.001 * i for i in range(1, 101)]

    assert percentile(values, 50) == values[49]
    assert percentile(values, 99) == values[98]
    assert percentile([], 50) is None


def test_the_report_prints_each_floor_it_ran():
    triple = {"p50": 1.0, "p95": 2.0, "p99": 3.0}
    streams = {"n": 2, "ok": 2, "open_max": 2, "errors": {}, "ttft_ms": triple, "streams_per_s": 1.0}
    streams["client_loop_lag_ms"] = {"max_ms": 0.1}
    level = {
        "n": 2,
        "lia": streams,
        "added_ttft_ms": triple,
        "rss": {"idle_mb": 1, "peak_mb": 2, "per_stream_kb": 3},
        "cpu": {"ms_per_stream": 1.0, "cores": 0.1},
        "pg": None,
        "durable_floor": streams,
        "durable_floor_added_ttft_ms": triple,
        "over_durable_floor_ttft_ms": triple,
    }
    report = {"runs": [{"label": "uvicornx2", "levels": [level]}], "fake": {}}

    printed = table(report)

    assert "Lia over durable floor" in printed
    assert "Lia over floor" not in printed  # no plain floor ran


def test_memory_per_stream_is_read_from_the_first_rounds_peak():
    """Later rounds add what a process keeps between them, not what their streams hold."""
    sampler = RSSSampler(server=None)  # type: ignore[arg-type]  (never started: no server to read)
    sampler.samples = [(10.0, 100), (11.0, 180), (12.0, 150), (13.0, 200), (14.0, 190)]

    assert sampler.peak == 200
    assert sampler.peak_until(12.5) == 180
    assert sampler.peak_until(9.0) == 0
