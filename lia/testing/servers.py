"""Real servers the fault tests own: a throwaway PostgreSQL, a throwaway Redis, and Lia itself
under daphne, each a subprocess on a free loopback port that a test may stop, restart, hang
(SIGSTOP) or kill without touching the shared services on 5432/6379.

Every server runs in its own process group, so `pause()` freezes the whole server (PostgreSQL's
postmaster and every backend) and `kill()` leaves nothing behind. The pytest fixtures that start
them, and always kill them at teardown, are in `lia.testing.pytest_plugin`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import redis

from lia.management.commands.serve import DEFAULT_SERVER, signal_with_parent, worker_command

if TYPE_CHECKING:
    from lia.db.postgresql.base import DatabaseWrapper

BASE_DIR = Path(__file__).resolve().parent.parent.parent
POSTGRES_SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


class ServerUnavailable(RuntimeError):
    """The binaries a throwaway server needs are not installed here."""


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Any, *, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll `condition()` until it returns something truthy; its exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as exc:
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:g}s (last error: {last_error!r})")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def die_with_parent() -> None:
    """In the child before exec: be SIGKILLed when the thread that started it dies, e.g. the
    test process killed without its teardown, so no server outlives the run. Servers are
    therefore started from the test's main thread."""
    signal_with_parent(signal.SIGKILL)


class _ProcessGroup:
    """A subprocess started in a new session: signals go to its whole process group."""

    process: subprocess.Popen[bytes] | None = None
    paused = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def pause(self) -> None:
        """Freeze every process of the server: connections are accepted by the kernel, and
        nothing answers. What a hung dependency looks like to Lia."""
        self._signal_group(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL the whole group and reap it; safe to call on a stopped server."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self._signal_group(signal.SIGCONT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.process = None
        self.paused = False


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/*/bin with initdb and postgres (Debian's layout), else
    the directory of an `initdb` on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise ServerUnavailable("PostgreSQL server binaries (initdb, postgres) not found")


def child_pids(parent: int) -> list[int]:
    """The direct children of a process, from /proc."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(parent):
            children.append(int(status.parent.name))
    return children


class PostgresServer(_ProcessGroup):
    """A PostgreSQL cluster in a temporary directory, trust auth, listening on 127.0.0.1 only.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
    Commits are written but not flushed (fsync off: the machine never crashes in these tests,
    only the server does, and what it wrote is in the OS's cache), so even an immediate
    shutdown loses no committed transaction.
    """

    def _signal_group(self, signum: int) -> None:
        # Each backend calls setsid(), leaving the postmaster's process group: signal them
        # one by one too. Children are listed before (a killed postmaster's are re-parented)
        # and after signalling the postmaster (a stopped one forks no more).
        if self.process is None:
            return
        children = set(child_pids(self.process.pid))
        super()._signal_group(signum)
        children.update(child_pids(self.process.pid))
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lia-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            owner = pwd.getpwnam(self.user)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "--no-sync"])

    def _run(self, command: Sequence[str]) -> None:
        result = subprocess.run(command, user=self.user, capture_output=True, text=True, check=False, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}")

    def start(self, *, timeout: float = 30.0) -> PostgresServer:
        if self.running:
            return self
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                user=self.user,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
                cwd=self.root,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise TimeoutError(f"postgres did not accept connections within {timeout:g}s:\n{_tail(self.log_path)}")

    def stop(self, mode: str = "fast", *, timeout: float = 30.0) -> None:
        """Shut down like `pg_ctl stop -m MODE`: fast ends every session at once, immediate
        is a crash (no checkpoint)."""
        if self.process is None:
            return
        if self.paused:
            self.resume()
        if self.process.poll() is None:
            self.process.send_signal(POSTGRES_SHUTDOWN_SIGNALS[mode])
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, params: Sequence[Any] = (), *, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit (CREATE DATABASE needs it); the rows, if any."""
        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str, *, template: str | None = None) -> str:
        template_clause = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{template_clause}')
        return self.url(name)

    def backends(self, application_name: str) -> list[int]:
        rows = self.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return [row[0] for row in rows]

    def terminate_backends(self, application_name: str) -> int:
        """pg_terminate_backend() on every session of one application: what a DBA, a failover
        or an idle-session killer does to a pool. Returns once they have ended (up to 5 s each):
        a backend sends its FATAL message a moment after the call, and a connection handed out
        within that moment fails its first query like any connection lost mid-checkout."""
        rows = self.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        return sum(1 for (terminated,) in rows if terminated)


def postgres_database(port: int, *, alias: str, options: dict[str, Any]) -> DatabaseWrapper:
    """Lia's database backend for the `postgres` database of a PostgreSQL on 127.0.0.1:`port`,
    with the settings Lia's would have (a pool in `options` included), outside
    django.db.connections: a test's own connection or pool."""
    from lia.db.postgresql.base import DatabaseWrapper

    return DatabaseWrapper(
        {
            "ENGINE": "lia.db.postgresql",
            "NAME": "postgres",
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "OPTIONS": options,
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": True,
            "AUTOCOMMIT": True,
            "ATOMIC_REQUESTS": False,
            "TIME_ZONE": None,
            "TEST": {},
        },
        alias=alias,
    )


class RedisServer(_ProcessGroup):
    """redis-server on a free loopback port, nothing persisted."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable("redis-server not found")
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lia-redis-"))
        self.log_path = self.root / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self, *, timeout: float = 15.0) -> RedisServer:
        if self.running:
            return self
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{_tail(self.log_path)}")
            return bool(self.client().ping())

        wait_until(answers, timeout=timeout, what="redis-server answering PING")
        return self

    def stop(self) -> None:
        """Gone: connections are refused from now on (until `start()`, on the same port)."""
        self.kill()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def live_environment(extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of a live Lia: nothing of the caller's (DATABASE_URL, REDIS_URL,
    provider keys) leaks in, except what a Python process needs to run."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "lia.settings.live",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "REDIS_URL": "",
        }
    )
    env.update(extra)
    return env


def run_manage(*args: str, env: dict[str, str], timeout: float = 120.0) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=live_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


class LiveLia(_ProcessGroup):
    """Lia served as one worker of `manage.py serve` runs it (uvicorn, or `server="daphne"`), on
    a free port.

    The listening socket is made here and handed to the server (`--fd`), so the port can't be
    taken in between, and `start()` returns once /health/live answers.
    """

    def __init__(
        self,
        *,
        env: dict[str, str],
        log_path: Path,
        application_close_timeout: float = 10.0,  # daphne's
        server: str = DEFAULT_SERVER,
    ) -> None:
        self.env = live_environment(env)
        self.log_path = log_path
        self.application_close_timeout = application_close_timeout
        self.server = server
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> LiveLia:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        try:
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    worker_command(
                        self.server,
                        listener.fileno(),
                        backlog=128,
                        daphne_options=("--application-close-timeout", f"{self.application_close_timeout:g}"),
                    ),
                    cwd=BASE_DIR,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),),
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
        finally:
            listener.close()

        def live() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.server} exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            return httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200

        try:
            wait_until(live, timeout=timeout, interval=0.1, what="Lia's /health/live")
        except Exception:
            self.kill()
            raise
        return self

    def terminate(self, *, timeout: float = 30.0) -> int:
        """SIGTERM, as a platform does on deploy; wait for the server to exit and return its code."""
        if self.process is None:
            raise RuntimeError("Lia is not running")
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30.0), **kwargs)


@contextlib.contextmanager
def paused(server: _ProcessGroup) -> Iterator[None]:
    server.pause()
    try:
        yield
    finally:
        server.resume()
