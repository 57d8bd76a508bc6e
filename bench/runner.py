"""Drive one benchmark: the fake, the database, Lia under each server, the load client, samplers."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from bench.client import loopback_address, raise_open_files_limit
from bench.report import added, open_max, summarize_history, summarize_streams
from bench.server import APP, DURABLE_FLOOR_APP, FLOOR_APP, ROOT, LiaServer, proc_status, server_available
from lia.management.commands.serve import default_workers

MODEL = "gpt-4o-mini"
MESSAGE = "Hello Lia! Could you tell me something nice about the sea?"
PASSWORD = "BenchPassw0rd"  # noqa: S105 (the benchmark users' password, loopback only)
MB = 1024 * 1024


@dataclass
class Config:
    levels: list[int] = field(default_factory=lambda: [1, 50, 200, 1000])
    servers: list[str] = field(default_factory=lambda: ["uvicorn"])  # the production default
    workers: list[int] = field(default_factory=lambda: [default_workers()])  # as `manage.py serve`: one per core
    embedded: bool = False
    sqlite_dir: str | None = None  # where the embedded SQLite file goes (default: the temp dir)
    database_url: str = "postgres://postgres@127.0.0.1:5432/lia_bench"
    redis_url: str = "redis://127.0.0.1:6379/0"
    pool_max_size: int | None = None
    pool_timeout: float | None = None
    server_env: dict[str, str] = field(default_factory=dict)  # any other setting, e.g. DATABASE_POOL_MAX_WAITING
    chunks: int = 20
    delay: float = 0.01
    first_delay: float = 0.0
    sentiment_method: str | None = None  # None: the server's default
    streams_per_user: int = 2
    min_samples: int = 30  # small levels are repeated in rounds until they have this many streams
    warmup: int = 10
    api_registrations: int = 4
    history_seconds: float = 5.0
    prefill: int = 0  # past conversations per user, created before the levels
    history_concurrency: int = 32
    ramp_seconds: float = 0.0  # 0: all N streams start together; else their arrivals spread over it
    level_deadline: float | None = None  # one round, from its start gate (None: see deadline_s)
    stream_timeout: float | None = None  # one stream, from its request (None: see stream_timeout_s)
    connect_timeout: float = 15.0
    backlog: int = 2048
    daphne_verbosity: int = 1
    loop: str = "auto"
    fresh_server: bool = True
    profile: str | None = None  # "py-spy": record the server during each level
    tracemalloc: bool = False  # daphne under tracemalloc: allocation sites per open stream
    floor: bool = False  # each level also against bench.floor, the bare proxy, under the same server
    floor_durable: bool = False  # and against its durable variant (a read and a commit first; PostgreSQL)
    results_dir: Path = ROOT / "bench" / "results"
    quiet: bool = False

    @property
    def reply_s(self) -> float:
        """How long the provider fake paces one reply."""
        return self.first_delay + self.chunks * self.delay

    @property
    def stream_timeout_s(self) -> float:
        """A stream may take 120 s beyond the provider's pace (waiting for Lia under load)."""
        return self.stream_timeout if self.stream_timeout is not None else 120.0 + self.reply_s

    @property
    def deadline_s(self) -> float:
        """A round ends at the latest a minute after its last arrival's stream timeout."""
        if self.level_deadline is not None:
            return self.level_deadline
        return self.ramp_seconds + self.stream_timeout_s + 60.0

    def arrivals(self, n: int) -> str:
        return f"{n} streams arriving over {self.ramp_seconds:g} s" if self.ramp_seconds else f"{n} concurrent streams"


def log(config: Config, message: str) -> None:
    if not config.quiet:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- child processes ---------------------------------------------------------------------------


# Environment variables that configure Lia: the benchmark's servers get none of the caller's.
LIA_SETTING_PREFIXES = (
    *("DJANGO_", "DATABASE_", "REDIS_", "LLM_", "OPENAI_", "GEMINI_", "GOOGLE_", "CHAT_", "RATE_LIMIT_"),
    *("LOG_", "CACHE_", "JWT_", "COOKIE_", "SENTIMENT_", "DEFAULT_LLM_", "CORS_", "TRUSTED_PROXY"),
)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The runner's environment without anything that configures Lia, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(LIA_SETTING_PREFIXES)}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def run_client(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one job in a separate load-client process and return its result."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.client"],
        input=json.dumps(job).encode(),
        capture_output=True,
        cwd=ROOT,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.client failed ({completed.returncode}): {completed.stderr.decode()[-2000:]}")
    return json.loads(completed.stdout)


@contextlib.contextmanager
def fake_provider(config: Config) -> Iterator[dict[str, str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.fake",
            "--chunks",
            str(config.chunks),
            "--delay",
            str(config.delay),
            "--first-delay",
            str(config.first_delay),
        ],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        line = process.stdout.readline() if process.stdout else b""
        if not line:
            raise RuntimeError("the provider fake did not start")
        urls = json.loads(line)
        loopback_address(urls["url"])
        yield urls
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --- database and Redis ------------------------------------------------------------------------


def _pg_maintenance_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    return parts._replace(path="/postgres").geturl(), name


def prepare_postgres(config: Config) -> None:
    import psycopg
    from psycopg import sql

    maintenance, name = _pg_maintenance_url(config.database_url)
    if "bench" not in name:
        raise SystemExit(f"refusing to recreate database {name!r}: its name must contain 'bench'")
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_postgres(config: Config) -> None:
    import psycopg
    from psycopg import sql

    maintenance, name = _pg_maintenance_url(config.database_url)
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def clear_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


class Sampler:
    """A background thread that runs `_run` (which samples every `interval` seconds until
    `_stop` is set) while the `with` block lasts."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


class PGSampler(Sampler):
    """The app's connections in pg_stat_activity, sampled every `interval` seconds."""

    def __init__(self, database_url: str, interval: float = 0.1) -> None:
        super().__init__(interval)
        self.maintenance, self.name = _pg_maintenance_url(database_url)
        self.samples: list[tuple[int, int]] = []

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.maintenance, autocommit=True, connect_timeout=5) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.name,),
                ).fetchone()
                self.samples.append((int(row[0]), int(row[1])) if row else (0, 0))
                self._stop.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        totals = [total for total, _ in self.samples] or [0]
        busy = [active for _, active in self.samples] or [0]
        return {
            "max": max(totals),
            "mean": round(sum(totals) / len(totals), 1),
            "max_not_idle": max(busy),
            "samples": len(self.samples),
        }


class RSSSampler(Sampler):
    """The server's resident memory (all its processes), sampled every `interval` seconds."""

    def __init__(self, server: LiaServer, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.server = server
        self.samples: list[tuple[float, int]] = []  # (time.monotonic(), bytes)
        self.peak_threads = 0

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def peak_until(self, moment: float) -> int:
        """The peak of the samples taken up to `moment` (time.monotonic())."""
        return max((rss for at, rss in self.samples if at <= moment), default=0)

    def _run(self) -> None:
        pids = self.server.pids()
        while not self._stop.is_set():
            statuses = [proc_status(pid) for pid in pids]
            self.samples.append((time.monotonic(), sum(rss for rss, _ in statuses)))
            self.peak_threads = max(self.peak_threads, sum(threads for _, threads in statuses))
            self._stop.wait(self.interval)


@contextlib.contextmanager
def profiler(config: Config, server: LiaServer, path: Path) -> Iterator[None]:
    """py-spy record of every server process while the block runs: collapsed stacks of the thread
    holding the GIL (where the CPU goes), sampled without pausing the server."""
    if config.profile != "py-spy":
        yield
        return
    processes = [
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--gil",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(path.with_suffix(f".{pid}.txt")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in (p.pid for p in server.processes)
    ]
    time.sleep(0.5)
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(2)  # SIGINT: py-spy writes its output and exits
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


# --- the benchmark -------------------------------------------------------------------------------


class Bench:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        self.logs = config.results_dir / f"{self.stamp}-logs"
        self.tokens: list[str] = []
        self.prefilled = 0  # past conversations created before the levels (--prefill)
        self.redis_prefix = f"lia-bench-{secrets.token_hex(4)}"
        self.secret_key = secrets.token_urlsafe(50)  # the server's, fresh for every benchmark
        self.jwt_secret = secrets.token_urlsafe(64)
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.fake_urls: dict[str, str] = {}
        self.spare: LiaServer | None = None  # the registration's server, kept when servers are reused

    # environment of the server (and of `migrate`)
    def server_env(self) -> dict[str, str]:
        config = self.config
        extra = {
            "DJANGO_SETTINGS_MODULE": "lia.settings.base",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": self.secret_key,
            "JWT_SECRET_KEY": self.jwt_secret,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback; TLS ends at a proxy
            "RATE_LIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "OPENAI_BASE_URL": self.fake_urls["openai_base_url"],
            "OPENAI_API_KEY": "sk-bench",
            "DEFAULT_LLM_PROVIDER": "openai",
            "DEFAULT_LLM_MODEL": MODEL,
            "LLM_OFFLINE_FALLBACK": "false",
        }
        if config.embedded:
            if self.tmp is None:
                raise RuntimeError("embedded mode without its temporary directory")
            extra["DATABASE_URL"] = f"sqlite:///{self.tmp.name}/bench.sqlite3"
        else:
            extra["DATABASE_URL"] = config.database_url
            extra["REDIS_URL"] = config.redis_url
            extra["CACHE_KEY_PREFIX"] = self.redis_prefix
            if config.pool_max_size:
                extra["DATABASE_POOL_MAX_SIZE"] = str(config.pool_max_size)
            if config.pool_timeout:
                extra["DATABASE_POOL_TIMEOUT"] = str(config.pool_timeout)
        extra.update(config.server_env)
        return child_env(extra)

    def run_python(self, *args: str, timeout: float) -> bytes:
        """`python *args` in the project under the server's environment; its stdout."""
        completed = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.server_env(), capture_output=True, timeout=timeout, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {completed.stderr.decode()[-2000:]}")
        return completed.stdout

    def migrate(self) -> None:
        if not self.config.embedded:
            prepare_postgres(self.config)
        self.run_python("manage.py", "migrate", "--noinput", "-v", "0", timeout=300)

    def start_server(self, kind: str, workers: int, app: str = APP, floor: str = "") -> LiaServer:
        """Lia (or, named by `floor`, one of bench.floor's apps) under `kind` with `workers`."""
        config = self.config
        return LiaServer(
            kind=kind,
            workers=workers,
            app=app,
            env=self.server_env(),
            log_path=self.logs / f"{kind}-w{workers}{'-' + floor.replace('_', '-') if floor else ''}.log",
            backlog=config.backlog,
            daphne_verbosity=config.daphne_verbosity,
            uvicorn_loop=config.loop,
            tracemalloc_dir=(
                self.logs / "tracemalloc" if config.tracemalloc and kind == "daphne" and app == APP else None
            ),
        ).start()

    def stream_job(self, url: str, target: str, n: int, rounds: int, ramp: float) -> dict[str, Any]:
        config = self.config
        if target == "lia":
            body: dict[str, Any] = {"message": MESSAGE, "provider": "openai", "model": MODEL}
            if config.sentiment_method:
                body["sentiment_method"] = config.sentiment_method
        else:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": MESSAGE}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        return {
            "kind": "streams",
            "target": target,
            "url": url,
            "n": n,
            "rounds": rounds,
            "ramp_s": ramp,
            "tokens": self.tokens,
            "body": body,
            "connect_timeout": config.connect_timeout,
            "idle_timeout": config.stream_timeout_s,
            "stream_timeout": config.stream_timeout_s,
            "deadline": config.deadline_s,
        }

    def streams(self, url: str, target: str, n: int, rounds: int = 1, ramp: float = 0.0) -> dict[str, Any]:
        """N streams, `rounds` times; `ramp` > 0 spreads their arrivals over that many seconds."""
        job = self.stream_job(url, target, n, rounds, ramp)
        return run_client(job, timeout=rounds * self.config.deadline_s + 60)

    def rounds_for(self, n: int) -> int:
        return max(1, math.ceil(self.config.min_samples / n))

    def register(self, url: str) -> None:
        """A few users through POST /auth/register (the real path), the rest in bulk (bench.users)."""
        config = self.config
        count = max(1, math.ceil(max(config.levels) / config.streams_per_user))
        through_api = min(count, config.api_registrations)
        prefix = f"bench_{secrets.token_hex(3)}"
        result = run_client(
            {
                "kind": "register",
                "url": url,
                "count": through_api,
                "concurrency": 2,
                "prefix": f"{prefix}_api",
                "password": PASSWORD,
                "deadline": 300.0,
                "idle_timeout": 60.0,
            },
            timeout=360,
        )
        if result["errors"] or len(result["tokens"]) != through_api:
            raise RuntimeError(f"registration failed: {result['errors']}")
        self.tokens = result["tokens"]
        if count > through_api:
            args = ("--count", str(count - through_api), "--prefix", prefix, "--password", PASSWORD)
            self.tokens += json.loads(self.run_python("-m", "bench.users", *args, timeout=300))
        log(
            config,
            f"{count} users: {through_api} registered through the API in {result['wall_s']:.1f} s, the rest in bulk",
        )
        if config.prefill:
            started = time.monotonic()
            args = ("--prefix", prefix, "--conversations", str(config.prefill))
            self.prefilled = json.loads(self.run_python("-m", "bench.users", *args, timeout=1800))["conversations"]
            log(config, f"{self.prefilled} past conversations created in {time.monotonic() - started:.1f} s")

    def pg_sampler(self) -> PGSampler | contextlib.nullcontext[None]:
        return contextlib.nullcontext() if self.config.embedded else PGSampler(self.config.database_url)

    def warm_up(self, url: str, n: int) -> None:
        self.streams(url, "lia", 1)
        self.streams(url, "lia", min(n, self.config.warmup))

    def level(self, server: LiaServer, n: int) -> dict[str, Any]:
        config = self.config
        self.warm_up(server.url, n)
        time.sleep(0.5)
        idle = server.rss()
        rounds = self.rounds_for(n)
        cpu_before = server.cpu()
        memory = None
        with RSSSampler(server) as rss, self.pg_sampler() as pg:
            profile_path = self.logs / f"profile-{server.kind}-w{server.workers}-n{n}"
            with profiler(config, server, profile_path):
                if server.tracemalloc_dir is not None:
                    result, memory = self.traced_streams(server, n, rounds)
                else:
                    result = self.streams(server.url, "lia", n, rounds, config.ramp_seconds)
        cpu = server.cpu() - cpu_before
        peak = max(rss.peak, idle)
        # Per stream, the first round's peak: later rounds add what a process keeps between them
        # (its allocator's arenas, the pool's connections, caches), not what their streams hold.
        ended = result.get("round_ended_at") or []
        first_peak = max(rss.peak_until(ended[0]), idle) if len(ended) > 1 else peak
        summary = summarize_streams(result)
        # All N streams are in flight at the peak when they start together; with a ramp only those
        # held open at once are, however many arrived over the level.
        held = config.ramp_seconds > 0
        first_round = [record for record in result["records"] if record.get("round", 0) == 0]
        streams_at_peak = open_max(first_round) if held else n
        return {
            "n": n,
            "lia": summary,
            # The server's CPU time (all processes) over the level, per stream and as a share of one core.
            "cpu": {
                "ms_per_stream": round(cpu * 1000 / summary["n"], 2),
                "cores": round(cpu / summary["wall_s"], 2) if summary["wall_s"] else None,
            },
            "rss": {
                "idle_mb": round(idle / MB, 1),
                "peak_mb": round(peak / MB, 1),
                "first_round_peak_mb": round(first_peak / MB, 1),
                "per_stream_kb": round((first_peak - idle) / streams_at_peak / 1024, 1) if streams_at_peak else None,
                "per_stream_of": "open_max" if held else "n",
                "peak_threads": rss.peak_threads,
            },
            "pg": pg.summary() if pg is not None else None,
            "tracemalloc": memory,
        }

    def snapshot(self, server: LiaServer, timeout: float = 120.0) -> Path:
        """Ask the traced daphne for a tracemalloc snapshot and wait for the file."""
        directory = server.tracemalloc_dir
        assert directory is not None  # noqa: S101 (only called for traced servers)
        before = set(directory.glob("*.snap"))
        server.processes[0].send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = set(directory.glob("*.snap")) - before
            if new:
                path = new.pop()
                size = -1
                while size != path.stat().st_size:  # written completely
                    size = path.stat().st_size
                    time.sleep(0.5)
                return path
            time.sleep(0.2)
        raise RuntimeError("the traced server wrote no snapshot")

    def traced_streams(self, server: LiaServer, n: int, rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """One level with a snapshot when idle and one when (nearly) all N streams are open."""
        from bench.traced import compare

        idle = self.snapshot(server)
        idle_threads = sum(proc_status(pid)[1] for pid in server.pids())
        holder: dict[str, Any] = {}
        ramp = self.config.ramp_seconds
        client = threading.Thread(target=lambda: holder.update(result=self.streams(server.url, "lia", n, 1, ramp)))
        client.start()
        deadline = time.monotonic() + self.config.deadline_s
        while client.is_alive() and time.monotonic() < deadline:
            if sum(proc_status(pid)[1] for pid in server.pids()) >= idle_threads + 0.9 * n:
                break
            time.sleep(0.05)
        # Every request has its thread; give them half a reply to get into the streaming phase.
        time.sleep(self.config.delay * self.config.chunks / 2)
        open_threads = sum(proc_status(pid)[1] for pid in server.pids()) - idle_threads
        busy = self.snapshot(server)
        client.join()
        report = compare(idle, busy, max(open_threads, 1))
        (self.logs / f"tracemalloc-{server.kind}-n{n}.txt").write_text(report)
        return holder["result"], {"open_requests": open_threads, "report": report.splitlines()[:16]}

    def history(self, server: LiaServer) -> dict[str, Any]:
        config = self.config
        job = {
            "kind": "history",
            "url": server.url,
            "tokens": self.tokens,
            "concurrency": config.history_concurrency,
            "duration": min(1.0, config.history_seconds),
            "limit": 20,
            "max_requests_per_worker": 1_000_000,
            "connect_timeout": config.connect_timeout,
            "idle_timeout": 30.0,
        }
        run_client(job, timeout=60)  # warm-up: pool, caches, the server's code paths
        with self.pg_sampler() as pg:
            result = run_client({**job, "duration": config.history_seconds}, timeout=config.history_seconds + 90)
        return {**summarize_history(result), "pg": pg.summary() if pg is not None else None}

    def run(self) -> dict[str, Any]:
        config = self.config
        self.logs.mkdir(parents=True, exist_ok=True)
        limit = raise_open_files_limit()
        if max(config.levels) * 3 + 256 > limit:
            log(config, f"warning: open-files limit {limit} may be too low for {max(config.levels)} streams")
        self.tmp = tempfile.TemporaryDirectory(prefix="lia-bench-", dir=config.sqlite_dir) if config.embedded else None
        report: dict[str, Any] = {"meta": self.meta(), "fake": {}, "runs": []}
        try:
            with fake_provider(config) as urls:
                self.fake_urls = urls
                log(
                    config, f"provider fake at {urls['url']} ({config.chunks} chunks, {config.delay * 1000:g} ms apart)"
                )
                mode = "embedded (SQLite, local memory)" if config.embedded else "PostgreSQL + Redis"
                log(config, f"migrating a fresh database: {mode}")
                self.migrate()
                kinds = [kind for kind in config.servers if server_available(kind)]
                for kind in set(config.servers) - set(kinds):
                    log(config, f"skipping {kind}: not installed (bash bin/bench installs requirements/bench.txt)")
                if not kinds:
                    raise SystemExit("no server to benchmark")
                server = self.start_server(kinds[0], config.workers[0])
                try:
                    self.register(server.url)
                finally:
                    if config.fresh_server:
                        server.stop()
                    else:
                        self.spare = server
                report["meta"]["prefilled_conversations"] = self.prefilled
                for n in config.levels:
                    log(config, f"fake alone: {config.arrivals(n)}")
                    result = self.streams(urls["url"], "fake", n, self.rounds_for(n), config.ramp_seconds)
                    fake = summarize_streams(result)
                    report["fake"][str(n)] = fake
                for kind in kinds:
                    for workers in config.workers:
                        report["runs"].append(self.run_server(kind, workers, report["fake"]))
        finally:
            if self.spare is not None:
                self.spare.stop()
            if not config.embedded:
                with contextlib.suppress(Exception):
                    clear_redis(config.redis_url, self.redis_prefix)
                with contextlib.suppress(Exception):
                    drop_postgres(config)
            if self.tmp is not None:
                self.tmp.cleanup()
        return report

    def run_server(self, kind: str, workers: int, fake: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        label = kind if workers == 1 else f"{kind}x{workers}"
        run: dict[str, Any] = {"server": kind, "workers": workers, "label": label, "levels": []}
        server: LiaServer | None = None
        if self.spare is not None and (self.spare.kind, self.spare.workers) == (kind, workers):
            server, self.spare = self.spare, None
        try:
            for n in config.levels:
                if server is None or config.fresh_server:
                    if server is not None:
                        server.stop()
                    server = self.start_server(kind, workers)
                log(config, f"{label}: {config.arrivals(n)}")
                level = self.level(server, n)
                level["added_ttft_ms"] = added(level["lia"]["ttft_ms"], fake[str(n)]["ttft_ms"])
                run["levels"].append(level)
                lia = level["lia"]
                log(
                    config,
                    f"{label} N={n}: ok {lia['ok']}/{lia['n']}, open max {lia['open_max']}, "
                    f"TTFT p50 {lia['ttft_ms']['p50']} ms "
                    f"(added {level['added_ttft_ms']['p50']}), errors {lia['errors'] or 0}",
                )
                floors = [("floor", FLOOR_APP)] if config.floor else []
                floors += [("durable_floor", DURABLE_FLOOR_APP)] if config.floor_durable else []
                for name, app in floors:
                    if config.fresh_server and server is not None:  # no idle Lia beside the floor
                        server.stop()
                        server = None
                    level.update(self.floor_level(kind, workers, n, level["lia"], fake[str(n)], name=name, app=app))
                    log(
                        config,
                        f"{label} N={n}, the {name.replace('_', ' ')}: TTFT p50 {level[name]['ttft_ms']['p50']} ms "
                        f"(added {level[f'{name}_added_ttft_ms']['p50']}), errors {level[name]['errors'] or 0}",
                    )
            if config.history_seconds > 0:
                if server is None or config.fresh_server:
                    if server is not None:
                        server.stop()
                    server = self.start_server(kind, workers)
                log(config, f"{label}: history list, {config.history_concurrency} connections")
                run["history"] = self.history(server)
        finally:
            if server is not None:
                server.stop()
        return run

    def floor_level(
        self,
        kind: str,
        workers: int,
        n: int,
        lia: dict[str, Any],
        fake: dict[str, Any],
        *,
        name: str = "floor",
        app: str = FLOOR_APP,
    ) -> dict[str, Any]:
        """The same arrivals against a floor of bench.floor under the same server: what any
        proxy (`floor`), or any proxy that stores the message first (`durable_floor`), adds."""
        server = self.start_server(kind, workers, app=app, floor=name)
        try:
            self.warm_up(server.url, n)
            time.sleep(0.5)
            result = self.streams(server.url, "lia", n, self.rounds_for(n), self.config.ramp_seconds)
        finally:
            server.stop()
        floor = summarize_streams(result)
        return {
            name: floor,
            f"{name}_added_ttft_ms": added(floor["ttft_ms"], fake["ttft_ms"]),
            f"over_{name}_ttft_ms": added(lia["ttft_ms"], floor["ttft_ms"]),
        }

    def meta(self) -> dict[str, Any]:
        config = self.config
        return {
            "timestamp": self.stamp,
            "machine": {
                "cpu": _cpu_model(),
                "cores": os.cpu_count(),
                "memory_gb": _memory_gb(),
                "kernel": platform.release(),
                "python": platform.python_version(),
            },
            "versions": _versions(),
            "git": _git_revision(),
            "config": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(config).items()},
            "timeouts": {"stream_s": config.stream_timeout_s, "level_deadline_s": config.deadline_s},
            "users": max(1, math.ceil(max(config.levels) / config.streams_per_user)),
        }


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _memory_gb() -> float | None:
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("django", "daphne", "twisted", "uvicorn", "uvloop", "httptools", "granian", "openai", "psycopg"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _git_revision() -> str | None:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    return None
