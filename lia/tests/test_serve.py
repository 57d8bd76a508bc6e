"""`manage.py serve` warns at start when its workers' pools can ask PostgreSQL for more
connections than it accepts (README "Deployment": workers x DATABASE_POOL_MAX_SIZE must fit)."""

import io
import os
import socket
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from lia.management.commands import serve
from lia.management.commands.serve import connection_budget_warning, listening_sockets, postgres_accepted_connections
from lia.testing.servers import BASE_DIR, postgres_database


def test_more_pooled_connections_than_postgresql_accepts_is_a_warning():
    warning = connection_budget_warning(8, per_worker=15, accepted=97)

    assert "8 worker(s) x DATABASE_POOL_MAX_SIZE=15 = 120 database connections" in warning
    assert "PostgreSQL accepts 97" in warning


def test_pools_that_fit_or_no_answer_need_no_warning():
    assert connection_budget_warning(2, per_worker=10, accepted=20) is None
    assert connection_budget_warning(2, per_worker=10, accepted=None) is None  # not PostgreSQL, or down
    assert connection_budget_warning(2, per_worker=None, accepted=20) is None  # no pool


@pytest.mark.django_db(transaction=True)
def test_postgresql_says_how_many_connections_it_accepts():
    accepted = postgres_accepted_connections(connection)
    if connection.vendor != "postgresql":  # the embedded defaults' SQLite
        assert accepted is None
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        most = int(cursor.fetchone()[0])
        cursor.execute("SHOW superuser_reserved_connections")
        reserved = int(cursor.fetchone()[0])
        cursor.execute("SELECT coalesce(current_setting('reserved_connections', true)::int, 0)")  # 16+
        reserved += cursor.fetchone()[0]
    assert accepted == most - reserved

    database = connection.ops.quote_name(connection.settings_dict["NAME"])
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {database} CONNECTION LIMIT 7")
    try:
        assert postgres_accepted_connections(connection) == 7
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {database} CONNECTION LIMIT -1")


def test_serve_writes_the_warning_to_stderr(monkeypatch):
    monkeypatch.setattr(serve, "pool_max_size", lambda: 10)
    monkeypatch.setattr(serve, "postgres_accepted_connections", lambda database: 15)
    stderr = io.StringIO()

    serve.Command(stderr=stderr).warn_about_connection_budget(2)

    assert "2 worker(s) x DATABASE_POOL_MAX_SIZE=10 = 20 database connections" in stderr.getvalue()


def test_an_unreachable_postgresql_is_no_answer():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens on it once closed
    database = postgres_database(port, alias="unreachable", options={"connect_timeout": 2})

    assert postgres_accepted_connections(database) is None


def serve_refused(directory, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py serve` run from `directory` (no .env of the checkout's) with none of the
    caller's Django, JWT or database settings but `variables`; it is expected to stop at once."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "JWT_", "DATABASE_"))}
    return subprocess.run(  # noqa: S603
        [sys.executable, str(BASE_DIR / "manage.py"), "serve", "--port", "0", "--workers", "1"],
        cwd=directory,
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("debug", [None, "false"])
def test_serve_without_secrets_refuses_to_start_with_the_reason(debug, tmp_path):
    """`manage.py serve` is the production server: unlike the development commands, it gets no
    DEBUG default from manage.py (found by an audit: it ran, with the development secrets anyone
    can read in the source, wherever DJANGO_DEBUG was left unset)."""
    result = serve_refused(tmp_path, {} if debug is None else {"DJANGO_DEBUG": debug})

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set. Production (DJANGO_DEBUG=false) needs a strong secret" in result.stderr
    assert "Lia serving" not in result.stdout


def test_serve_help_needs_no_secrets():
    """Found by an audit: `manage.py serve --help` without production secrets was a traceback
    ("DJANGO_SECRET_KEY is not set") instead of the command's options."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "JWT_", "DATABASE_"))}
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(BASE_DIR / "manage.py"), "serve", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "--workers WORKERS" in result.stdout


def test_serve_runs_the_system_checks_and_an_error_stops_it(tmp_path):
    """An invalid pool (lia.E007) passed every check, and the server started only to answer every
    login with a 500 (found by an audit): serve runs the checks, and an error stops it."""
    result = serve_refused(
        tmp_path,
        {
            "DJANGO_DEBUG": "true",
            "DATABASE_URL": "postgres://lia@db.invalid:5432/lia",
            "DATABASE_POOL_MIN_SIZE": "12",
        },
    )

    assert result.returncode != 0
    assert "(lia.E007) DATABASE_POOL_MAX_SIZE (10) is less than DATABASE_POOL_MIN_SIZE (12)" in result.stderr
    assert "Lia serving" not in result.stdout


def test_a_port_out_of_range_is_an_argument_error():
    """Found by an audit: `serve --port 99999` ended in an OverflowError traceback."""
    with pytest.raises(CommandError, match="--port must be between 0 and 65535"):
        call_command("serve", "--port", "99999", "--workers", "1")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_is_refused_with_the_reason(workers):
    """Found by an audit: an OSError traceback."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        with pytest.raises(CommandError, match=rf"can't listen on 127\.0\.0\.1:{port}: address in use"):
            call_command("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers))


@pytest.mark.parametrize(("host", "workers"), [("127.0.0.1", 2), ("0.0.0.0", 3), ("127.0.0.1", 1)])  # noqa: S104
def test_a_second_server_cannot_share_the_port_of_a_running_one(host, workers):
    """Found by an audit: with SO_REUSEPORT a second `serve` bound the port of a running one
    without an error, and the kernel split new connections between the old and the new server."""
    running = listening_sockets("127.0.0.1", 0, count=2, backlog=16)
    try:
        port = running[0].getsockname()[1]

        with pytest.raises(OSError, match="Address already in use"):
            listening_sockets(host, port, count=workers, backlog=16)
    finally:
        for listener in running:
            listener.close()

    again = listening_sockets("127.0.0.1", port, count=2, backlog=16)  # free once the first is gone
    for listener in again:
        listener.close()


@pytest.mark.parametrize(
    ("files", "workers"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: `docker run --cpus 2`
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: a second worker for the half
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, 64),  # no limit
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 64),
        ({}, 64),  # no cgroup to read
        ({"cpu.max": "8000000 100000\n"}, 64),  # a quota above the cores: the cores
    ],
)
def test_one_worker_per_core_within_the_containers_cpu_limit(tmp_path, monkeypatch, files, workers):
    """Found by an audit: the cores a process may run on don't show a container's CPU quota, so
    one limited to 2 CPUs on a 64-core host started 64 workers, each with its database pool."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)

    assert serve.default_workers(tmp_path) == workers
