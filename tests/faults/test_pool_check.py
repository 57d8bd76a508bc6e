"""The pool's connection check (lia.db.postgresql), on a pool built by the backend as Django
builds it: a connection back in the pool a moment ago and silent since is handed out without a
round trip; one whose server ended it, one idle past the window and one with something to read
get the real check first. Connections go back as Django's wrapper puts them back (its close()),
which notes when."""

import time
import uuid

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from lia.db.postgresql.base import DatabaseWrapper, check_pooled_connection
from lia.testing.servers import postgres_database, wait_until


@pytest.fixture
def database(postgres, django_db_blocker):
    name = f"lia-pool-{uuid.uuid4().hex[:8]}"
    wrapper = postgres_database(
        postgres.port,
        alias=f"pool-check-{name}",
        options={"application_name": name, "pool": {"min_size": 1, "max_size": 1, "timeout": 10}},
    )
    wrapper.pool.open(wait=True, timeout=10)
    wrapper.application_name = name  # type: ignore[attr-defined]
    # The test's own PostgreSQL, not the test database pytest-django guards.
    with django_db_blocker.unblock():
        try:
            yield wrapper
        finally:
            wrapper.close()
            wrapper.close_pool()


@pytest.fixture
def round_trip_checks(monkeypatch):
    """Each time the real check (an empty query) runs."""
    calls: list[int] = []
    real = ConnectionPool.check_connection

    def counted(conn):
        calls.append(1)
        return real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    return calls


def query(database: DatabaseWrapper, *statements: str) -> int:
    """A request's visit: a connection from the pool, the statements, the connection back; the
    first column of the last statement's row."""
    try:
        with database.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            return cursor.fetchone()[0]
    finally:
        database.close()


def backend_pid(database: DatabaseWrapper) -> int:
    return query(database, "SELECT pg_backend_pid()")


def test_the_backend_installs_its_check(database):
    assert database.pool._check is check_pooled_connection


def test_a_connection_goes_back_to_the_pool_at_once(database):
    # No `reset` hook: psycopg_pool would hand every returned connection to its worker thread.
    assert database.pool._reset is None
    backend_pid(database)

    assert database.pool.get_stats()["pool_available"] == 1


def test_a_connection_back_a_moment_ago_and_silent_is_handed_out_without_a_round_trip(database, round_trip_checks):
    backend_pid(database)  # once through the pool: now it has come back
    round_trip_checks.clear()

    pids = {backend_pid(database) for _ in range(5)}

    assert len(pids) == 1  # the same connection each time, kept
    assert round_trip_checks == []


def test_a_connection_its_server_ended_is_replaced_before_use(database, postgres, round_trip_checks):
    before = backend_pid(database)
    assert postgres.terminate_backends(database.application_name) == 1
    # The server's FATAL message (and the stream's end) reach the idle socket.
    wait_until(lambda: not postgres.backends(database.application_name), timeout=10, what="backend gone")

    after = backend_pid(database)

    assert after != before
    assert round_trip_checks  # the shortcut did not hand out the dead one


def test_a_connection_idle_past_the_window_is_checked_and_kept(database, settings, round_trip_checks):
    settings.DATABASE_POOL_CHECK_IDLE_SECONDS = 0.2
    before = backend_pid(database)
    round_trip_checks.clear()
    time.sleep(0.3)

    after = backend_pid(database)

    assert round_trip_checks == [1]
    assert after == before  # it answered: kept


def test_a_connection_with_something_to_read_is_checked_and_kept(database, postgres, round_trip_checks):
    before = query(database, "LISTEN lia_pool_check", "SELECT pg_backend_pid()")
    postgres.execute("NOTIFY lia_pool_check")  # arrives on the idle connection's socket
    time.sleep(0.2)
    round_trip_checks.clear()

    after = backend_pid(database)

    assert round_trip_checks == [1]
    assert after == before


def test_a_closed_connection_gets_the_real_check(postgres, round_trip_checks):
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.close()
        with pytest.raises(psycopg.OperationalError):
            check_pooled_connection(conn)

    assert round_trip_checks == [1]
