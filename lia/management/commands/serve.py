"""`manage.py serve`: Lia in production, one server process per core, all on one port.

Lia's chat streams are CPU-bound in Python, so one process uses about one core (README
"Performance"). This command binds one socket per worker on the same port (SO_REUSEPORT, each
with a listen backlog far above Twisted's 50, so a burst of connections is not left to SYN
retransmits) and starts each worker on its own (`lia.uvicorn_worker --fd`, uvicorn shutting down
as daphne does; or `daphne --fd` with `--server daphne` / WEB_SERVER=daphne): the kernel spreads new
connections evenly over them (on one shared socket, the worker that wakes first accepts a whole
burst); a port another server listens on, another `serve` included, is refused. It supervises
them as a container's main process should: SIGTERM or SIGINT is passed to every worker, which
ends its open streams as client disconnects (their partial replies are stored, lia.shutdown); if
a worker dies, the others are stopped and the command exits non-zero, so the platform restarts
the container.
"""

import ctypes
import errno
import functools
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from lia.shutdown import SHUTDOWN_GRACE_SECONDS

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1

try:  # looked up once, here: the child of a fork may not load libraries safely
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None
# Inside a container (its own cgroup namespace, the default with cgroup v2) its limits are here.
CGROUP_ROOT = Path("/sys/fs/cgroup")
SERVERS = ("uvicorn", "daphne")
DEFAULT_SERVER = SERVERS[0]  # as WEB_SERVER's default


def worker_command(server: str, fd: int, *, backlog: int, daphne_options: tuple[str, ...] = ()) -> list[str]:
    """The command of one worker serving Lia on the inherited listening socket `fd`."""
    if server == "uvicorn":
        return [sys.executable, "-m", "lia.uvicorn_worker", "--fd", str(fd), "--backlog", str(backlog)]
    # Verbosity 0: no access log of daphne's own, a plain-text line per request on stdout beside
    # Lia's JSON one (lia.middleware); Lia's logging settings set daphne's logger's level.
    return [sys.executable, "-m", "daphne", "--fd", str(fd), "-v", "0", *daphne_options, "lia.asgi:application"]


class Command(BaseCommand):
    help = "Serve Lia with one worker per core on one socket (the Docker image's command)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server listens on all interfaces
        parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (it is printed)")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.WEB_WORKERS or default_workers(),
            help="processes (WEB_WORKERS; default: one per core)",
        )
        parser.add_argument("--backlog", type=int, default=1024, help="listen backlog of the shared socket")
        parser.add_argument("--server", default=settings.WEB_SERVER, help="uvicorn or daphne (WEB_SERVER)")

    def handle(self, *args: Any, host: str, port: int, workers: int, backlog: int, server: str, **options: Any) -> None:
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if server not in SERVERS:
            raise CommandError(f"--server must be one of {', '.join(SERVERS)}")
        if ":" in host:  # the sockets are IPv4 (and daphne adopts a passed one as IPv4)
            raise CommandError("--host must be an IPv4 address (use a proxy in front for IPv6)")
        if not 0 <= port <= 65535:
            raise CommandError("--port must be between 0 and 65535")
        try:
            listeners = listening_sockets(host, port, count=workers, backlog=backlog)
        except OSError as error:  # in use, not an address of this machine, a privileged port
            reason = "address in use (another server listens there)" if error.errno == errno.EADDRINUSE else error
            raise CommandError(f"can't listen on {host}:{port}: {reason}") from error
        address = listeners[0].getsockname()
        # Before any worker starts: a stop signal from now on ends them all.
        stopping: list[int] = []
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda received, frame: stopping.append(received))
        self.warn_about_connection_budget(workers)
        processes = [
            subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                worker_command(server, listener.fileno(), backlog=backlog),
                pass_fds=(listener.fileno(),),
                cwd=settings.BASE_DIR,  # `-m` finds Lia's modules from there, wherever serve was started
                # Killed (SIGKILL, the OOM killer), serve can't stop its workers: the kernel tells
                # them, and they stop as on a shutdown instead of serving its port on, orphaned.
                preexec_fn=functools.partial(signal_with_parent, signal.SIGTERM, os.getpid()),
            )
            for listener in listeners
        ]
        for listener in listeners:
            listener.close()  # each worker holds its own
        self.stdout.write(f"Lia serving on http://{address[0]}:{address[1]} with {workers} {server} worker(s)")
        self.stdout.flush()

        while not stopping and all(process.poll() is None for process in processes):
            time.sleep(0.2)
        failed = [process for process in processes if process.poll() is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS + 3
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if failed and not stopping:
            codes = ", ".join(str(process.returncode) for process in failed)
            raise CommandError(f"a worker exited (code {codes}); the others were stopped")
        self.stdout.write("Lia stopped")

    def warn_about_connection_budget(self, workers: int) -> None:
        warning = connection_budget_warning(
            workers, per_worker=pool_max_size(), accepted=postgres_accepted_connections(connection)
        )
        if warning:
            self.stderr.write(warning)


def signal_with_parent(signum: int, parent: int | None = None) -> None:
    """In the child before exec: get `signum` when the thread that started it (serve's, a
    test's) dies (Linux's PR_SET_PDEATHSIG; elsewhere nothing); at once if `parent` has already."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signum)
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), signum)


def listening_sockets(host: str, port: int, *, count: int, backlog: int) -> list[socket.socket]:
    """`count` listening sockets on one address (port 0: a free one, the same for all), which the
    kernel balances new connections over (SO_REUSEPORT), or one shared socket where the platform
    has no SO_REUSEPORT. OSError (EADDRINUSE) when another server listens on the port."""
    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [socket.create_server((host, port), backlog=backlog)] * count
    if port:
        # SO_REUSEPORT lets a second server (of the same user) bind a port another one listens on,
        # and the kernel would then split new connections between them: a socket without it
        # can't, so one is bound first (and closed) to find out.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as create_server: TIME_WAIT is free
            probe.bind((host, port))
    first = socket.create_server((host, port), backlog=backlog, reuse_port=True)
    port = first.getsockname()[1]
    return [first, *(socket.create_server((host, port), backlog=backlog, reuse_port=True) for _ in range(count - 1))]


def pool_max_size() -> int | None:
    """Each worker's most connections to the database (its pool's size); None without a pool."""
    pool = connection.settings_dict["OPTIONS"].get("pool")
    return pool.get("max_size") if isinstance(pool, dict) else None


# What PostgreSQL accepts from Lia's role in Lia's database: max_connections less the slots it
# keeps for superusers (and, from PostgreSQL 16, for roles granted pg_use_reserved_connections),
# within the role's and the database's own CONNECTION LIMIT (-1: none).
ACCEPTED_CONNECTIONS_SQL = """
SELECT current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int
       - coalesce(current_setting('reserved_connections', true)::int, 0),
       (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user),
       (SELECT datconnlimit FROM pg_database WHERE datname = current_database())
"""


def postgres_accepted_connections(database: BaseDatabaseWrapper) -> int | None:
    """How many connections PostgreSQL accepts from Lia (ACCEPTED_CONNECTIONS_SQL); None when
    the database isn't PostgreSQL or can't be asked now (each worker reports an unreachable
    database itself)."""
    if database.vendor != "postgresql":
        return None
    # A connection of its own (a pool opened here would keep idle connections open for as long
    # as the workers run), given little time: the workers wait for it to start.
    params = {**database.get_connection_params(), "connect_timeout": 2}
    try:
        with psycopg.connect(**params, autocommit=True) as conn:
            row = conn.execute(ACCEPTED_CONNECTIONS_SQL).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return min(limit for limit in row if limit is not None and limit >= 0)


def connection_budget_warning(workers: int, *, per_worker: int | None, accepted: int | None) -> str | None:
    """A warning when the workers' pools together may open more connections than PostgreSQL
    accepts: under load the last ones are refused, and the requests waiting for them get 503s."""
    if accepted is None or not per_worker:
        return None
    wanted = workers * per_worker
    if wanted <= accepted:
        return None
    return (
        f"Warning: {workers} worker(s) x DATABASE_POOL_MAX_SIZE={per_worker} = {wanted} database connections, "
        f"but PostgreSQL accepts {accepted} (max_connections less its reserved slots, within the role's and "
        "the database's connection limits), fewer still with other clients and replicas: under load some "
        "requests will fail with 503. Lower WEB_WORKERS or DATABASE_POOL_MAX_SIZE, or raise max_connections. "
        "(Behind a pooler such as PgBouncer, its own limits apply instead.)"
    )


def default_workers(cgroup: Path = CGROUP_ROOT) -> int:
    """One per core this process may use: the cores it may run on, within its container's CPU
    quota (`docker run --cpus 2`, a Kubernetes CPU limit), which they don't show. Found by an
    audit: a container limited to 2 CPUs on a 32-core host started 32 workers, 32 database pools
    and 32 processes' memory."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cpu_quota(cgroup: Path = CGROUP_ROOT) -> float | None:
    """The CPUs this process's cgroup may use per period (cgroup v2's cpu.max, or v1's CFS
    quota), or None without a limit."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()  # v2: "max 100000" or "200000 100000"
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()  # v1: -1 without a limit
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        cpus = int(quota) / int(period)
    except ValueError:  # "max"
        return None
    return cpus if cpus > 0 else None
