"""Figures from raw measurements, and the printed table."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

PERCENTILES = (50, 95, 99)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure is a value that was measured)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def ms_percentiles(seconds: list[float]) -> dict[str, float | None]:
    return {f"p{p}": _ms(percentile(seconds, p)) for p in PERCENTILES} | {"max": _ms(max(seconds, default=None))}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def open_max(records: list[dict[str, Any]]) -> int:
    """The most streams open at once: a stream that completed is open from its first chunk to its
    end. Rounds are counted apart (each one's times are seconds after its own gate)."""
    events: dict[int, list[tuple[float, int]]] = {}
    for record in records:
        if record["ok"] and record.get("first_chunk_at") is not None and record.get("end_at") is not None:
            events.setdefault(record.get("round", 0), []).extend(
                [(record["first_chunk_at"], 1), (record["end_at"], -1)]
            )
    most = 0
    for round_events in events.values():
        now_open = 0
        for _, step in sorted(round_events):  # at one instant an end (-1) comes before a start
            now_open += step
            most = max(most, now_open)
    return most


def summarize_streams(result: dict[str, Any]) -> dict[str, Any]:
    records = result["records"]
    ok = [r for r in records if r["ok"]]
    errors = Counter(r["error"] for r in records if not r["ok"])
    spans = sum(result["round_spans_s"])
    return {
        "n": len(records),
        "ok": len(ok),
        "errors": dict(errors),
        "open_max": open_max(records),
        "ttft_ms": ms_percentiles([r["ttft_s"] for r in records if r["ttft_s"] is not None]),
        "connect_ms": ms_percentiles([r["connect_s"] for r in records if r.get("connect_s") is not None]),
        "headers_ms": ms_percentiles([r["headers_s"] for r in records if r["headers_s"] is not None]),
        "total_ms": ms_percentiles([r["total_s"] for r in ok]),
        "chunks_per_stream": round(sum(r["chunks"] for r in ok) / len(ok), 1) if ok else 0,
        "rounds": len(result["round_spans_s"]),
        "wall_s": round(spans, 3),
        # Completed streams over the time from each round's start gate to its last stream's end.
        "streams_per_s": round(len(ok) / spans, 1) if spans else 0.0,
        "client_loop_lag_ms": {k: round(v, 2) for k, v in result["client_loop_lag"].items()},
    }


def added(lia: dict[str, float | None], fake: dict[str, float | None]) -> dict[str, float | None]:
    """One TTFT minus another (Lia's minus the fake's, say), percentile by percentile."""
    return {
        key: None if lia.get(key) is None or fake.get(key) is None else round(lia[key] - fake[key], 2)  # type: ignore[operator]
        for key in (f"p{p}" for p in PERCENTILES)
    }


def summarize_history(result: dict[str, Any]) -> dict[str, Any]:
    latencies = result["latencies"]
    return {
        "requests": len(latencies),
        "errors": result["errors"],
        "requests_per_s": round(len(latencies) / result["wall_s"], 1) if result["wall_s"] else 0.0,
        "latency_ms": ms_percentiles(latencies),
        "wall_s": round(result["wall_s"], 3),
        "client_loop_lag_ms": {k: round(v, 2) for k, v in result["client_loop_lag"].items()},
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _triple(values: dict[str, float | None]) -> str:
    return "/".join(_fmt(values.get(f"p{p}")) for p in PERCENTILES)


def _errors(errors: dict[str, int]) -> str:
    return ",".join(f"{name}:{count}" for name, count in sorted(errors.items())) or "0"


def table(report: dict[str, Any]) -> str:
    lines = []
    header = (
        f"{'server':<14}{'N':>6}  {'ok':>5}{'open max':>9}  {'errors':<14}{'Lia TTFT p50/95/99 ms':>24}"
        f"{'fake TTFT':>20}{'Lia-added':>22}{'streams/s':>11}{'RSS idle→peak MB':>19}"
        f"{'KB/stream':>11}{'CPU ms/str':>11}{'cores':>6}{'PG max':>8}{'lag ms':>8}"
    )
    lines += [header, "-" * len(header)]
    for run in report["runs"]:
        for level in run["levels"]:
            lia = level["lia"]
            fake = report["fake"].get(str(level["n"]), {})
            rss = level["rss"]
            pg = level.get("pg") or {}
            lines.append(
                f"{run['label']:<14}{level['n']:>6}  {lia['ok']:>5}{lia['open_max']:>9}  "
                f"{_errors(lia['errors']):<14}"
                f"{_triple(lia['ttft_ms']):>24}{_triple(fake.get('ttft_ms', {})):>20}"
                f"{_triple(level['added_ttft_ms']):>22}{_fmt(lia['streams_per_s']):>11}"
                f"{_fmt(rss['idle_mb'], 0) + '→' + _fmt(rss['peak_mb'], 0):>19}"
                f"{_fmt(rss['per_stream_kb'], 0):>11}{_fmt(level['cpu']['ms_per_stream']):>11}"
                f"{_fmt(level['cpu']['cores'], 2):>6}{_fmt(pg.get('max'), 0):>8}"
                f"{_fmt(lia['client_loop_lag_ms']['max_ms'], 0):>8}"
            )
    for name, title in (("floor", "floor"), ("durable_floor", "durable floor")):
        floors = [(run, level) for run in report["runs"] for level in run["levels"] if level.get(name)]
        if not floors:
            continue
        lines += [
            "",
            f"{'server':<14}{'N':>6}  {'ok':>8}  {'errors':<14}{f'{title} TTFT p50/95/99 ms':>32}"
            f"{f'{title}-added':>24}{f'Lia over {title}':>24}",
        ]
        for run, level in floors:
            floor = level[name]
            lines.append(
                f"{run['label']:<14}{level['n']:>6}  {floor['ok']:>8}  {_errors(floor['errors']):<14}"
                f"{_triple(floor['ttft_ms']):>32}{_triple(level[f'{name}_added_ttft_ms']):>24}"
                f"{_triple(level[f'over_{name}_ttft_ms']):>24}"
            )
    history = [run for run in report["runs"] if run.get("history")]
    if history:
        lines += ["", f"{'server':<14}{'history req/s':>14}{'p50/95/99 ms':>22}  {'errors':<12}{'PG max':>8}"]
        for run in history:
            h = run["history"]
            lines.append(
                f"{run['label']:<14}{_fmt(h['requests_per_s']):>14}{_triple(h['latency_ms']):>22}  "
                f"{_errors(h['errors']):<12}{_fmt((h.get('pg') or {}).get('max'), 0):>8}"
            )
    return "\n".join(lines)
