"""`python -m bench`: run the benchmark, print the table, write bench/results/<timestamp>.json."""

import argparse
import json
import os
import sys
from pathlib import Path

from bench.report import table
from bench.runner import Config, log
from bench.server import SERVERS


def _ints(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part]


def _servers(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    for name in names:
        if name not in SERVERS:
            raise argparse.ArgumentTypeError(f"unknown server {name!r} (one of {', '.join(SERVERS)})")
    return names


def parse(argv: list[str] | None = None) -> Config:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="bash bin/bench",
        description="Lia's streaming benchmark: N concurrent SSE chat streams against a paced provider fake.",
    )
    parser.add_argument(
        "--levels", type=_ints, default=defaults.levels, help="concurrent streams (default 1,50,200,1000)"
    )
    parser.add_argument(
        "--server",
        dest="servers",
        type=_servers,
        default=defaults.servers,
        help="uvicorn (default: the production server), daphne, granian, or a comma list to compare",
    )
    parser.add_argument(
        "--workers",
        type=_ints,
        default=defaults.workers,
        help="server processes (comma list; default: one per core, as manage.py serve)",
    )
    parser.add_argument("--embedded", action="store_true", help="file-based SQLite and local memory, no PG/Redis")
    parser.add_argument("--sqlite-dir", default=None, help="directory for --embedded's SQLite file (default: temp)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", defaults.database_url),
        help="PostgreSQL database to (re)create and migrate; its name must contain 'bench' "
        "(env BENCH_DATABASE_URL; default %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", defaults.redis_url),
        help="Redis (env BENCH_REDIS_URL); keys get a random lia-bench-* prefix, removed at the end",
    )
    parser.add_argument("--pool-max-size", type=int, default=None, help="DATABASE_POOL_MAX_SIZE (default: Lia's, 10)")
    parser.add_argument("--pool-timeout", type=float, default=None, help="DATABASE_POOL_TIMEOUT (default: Lia's, 3 s)")
    parser.add_argument(
        "--set",
        dest="server_env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment setting for the server, e.g. --set DATABASE_POOL_MAX_WAITING=2000 (repeatable)",
    )
    parser.add_argument("--chunks", type=int, default=defaults.chunks, help="text chunks per reply (default 20)")
    parser.add_argument("--delay-ms", type=float, default=defaults.delay * 1000, help="ms between chunks (default 10)")
    parser.add_argument("--first-delay-ms", type=float, default=0.0, help="ms before the provider's first frame")
    parser.add_argument(
        "--sentiment-method",
        default=None,
        help="sentiment_method sent with each message (default: none, the server's default)",
    )
    parser.add_argument(
        "--streams-per-user",
        type=int,
        default=defaults.streams_per_user,
        help="concurrent streams per registered user (default 2; Lia may cap it per user)",
    )
    parser.add_argument(
        "--min-samples",
        type=int,
        default=defaults.min_samples,
        help="repeat small levels in rounds until they have this many streams (default 30)",
    )
    parser.add_argument(
        "--history-seconds",
        type=float,
        default=defaults.history_seconds,
        help="length of the history-list phase (0 skips it)",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=defaults.prefill,
        metavar="K",
        help="give every user K past conversations before the levels (a database with history)",
    )
    parser.add_argument("--history-concurrency", type=int, default=defaults.history_concurrency)
    parser.add_argument(
        "--ramp-seconds",
        type=float,
        default=defaults.ramp_seconds,
        help="spread each level's arrivals evenly over this many seconds instead of starting all N at once "
        "(default 0); with replies longer than the ramp, all N streams are held open together",
    )
    parser.add_argument(
        "--level-deadline",
        type=float,
        default=defaults.level_deadline,
        help="hard limit in seconds for one round of a level, from its start gate (default: the ramp, "
        "plus the stream timeout of 120 s beyond the provider's pace (first delay + chunks x delay), plus 60 s)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=defaults.backlog,
        help="listen backlog of the server's socket (default 2048; daphne alone uses 50)",
    )
    parser.add_argument(
        "--loop",
        default=defaults.loop,
        choices=["auto", "asyncio", "uvloop"],
        help="event loop for uvicorn/granian (auto: uvloop when installed)",
    )
    parser.add_argument(
        "--daphne-verbosity",
        type=int,
        default=defaults.daphne_verbosity,
        help="daphne -v (1, its default, writes an access log line per request; manage.py serve runs it at 0)",
    )
    parser.add_argument(
        "--reuse-server", action="store_true", help="one server for all levels (default: fresh per level)"
    )
    parser.add_argument("--profile", choices=["py-spy"], default=None, help="record the server with py-spy per level")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="daphne under tracemalloc: allocation sites per open stream (slow: use e.g. --levels 50 --delay-ms 2000)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="run each level again against bench.floor (a bare SDK proxy, no Django) under the same server",
    )
    parser.add_argument(
        "--floor-durable",
        action="store_true",
        help="and against the durable floor: the bare proxy after a user read and a committed insert (PostgreSQL)",
    )
    parser.add_argument("--results-dir", type=Path, default=defaults.results_dir)
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: <results-dir>/<timestamp>.json)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.floor_durable and args.embedded:
        parser.error("--floor-durable needs PostgreSQL: it can't run with --embedded")
    if args.ramp_seconds < 0:
        parser.error("--ramp-seconds must be 0 or more")
    if args.level_deadline is not None and args.level_deadline <= args.ramp_seconds:
        parser.error("--level-deadline counts from the start gate: it must exceed --ramp-seconds")
    config = Config(
        levels=args.levels,
        servers=args.servers,
        workers=args.workers,
        embedded=args.embedded,
        sqlite_dir=args.sqlite_dir,
        database_url=args.database_url,
        redis_url=args.redis_url,
        pool_max_size=args.pool_max_size,
        pool_timeout=args.pool_timeout,
        server_env=dict(item.split("=", 1) for item in args.server_env),
        chunks=args.chunks,
        delay=args.delay_ms / 1000,
        first_delay=args.first_delay_ms / 1000,
        sentiment_method=args.sentiment_method,
        streams_per_user=args.streams_per_user,
        min_samples=args.min_samples,
        history_seconds=args.history_seconds,
        prefill=args.prefill,
        history_concurrency=args.history_concurrency,
        ramp_seconds=args.ramp_seconds,
        level_deadline=args.level_deadline,
        backlog=args.backlog,
        loop=args.loop,
        daphne_verbosity=args.daphne_verbosity,
        fresh_server=not args.reuse_server,
        profile=args.profile,
        tracemalloc=args.tracemalloc,
        floor=args.floor,
        floor_durable=args.floor_durable,
        results_dir=args.results_dir,
        quiet=args.quiet,
    )
    config.output = args.output  # type: ignore[attr-defined]
    return config


def main(argv: list[str] | None = None) -> int:
    from bench.runner import Bench

    config = parse(argv)
    bench = Bench(config)
    report = bench.run()
    output = getattr(config, "output", None) or config.results_dir / f"{bench.stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(table(report))
    log(config, f"results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
