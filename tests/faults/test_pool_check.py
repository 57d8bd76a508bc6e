"""The pool's connection check (lia.db.postgresql): a connection that stayed silent in the pool
is handed out without a round trip; one whose server ended it is caught and replaced before a
request sees it."""

import uuid

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from lia.db.postgresql.base import check_pooled_connection
from lia.testing.servers import wait_until


@pytest.fixture
def pool(postgres):
    name = f"lia-pool-{uuid.uuid4().hex[:8]}"
    with ConnectionPool(
        f"{postgres.url('postgres')}?application_name={name}",
        min_size=1,
        max_size=1,
        check=check_pooled_connection,
        reconnect_timeout=10,
        timeout=10,
    ) as pool:
        pool.wait(timeout=10)
        pool.application_name = name  # type: ignore[attr-defined]
        yield pool


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


def backend_pid(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_a_silent_connection_is_handed_out_without_a_round_trip(pool, round_trip_checks):
    pids = {backend_pid(pool) for _ in range(5)}

    assert len(pids) == 1  # the same connection each time, kept
    assert round_trip_checks == []


def test_a_connection_its_server_ended_is_replaced_before_use(pool, postgres, round_trip_checks):
    before = backend_pid(pool)
    assert postgres.terminate_backends(pool.application_name) == 1
    # The server's FATAL message (and the stream's end) reach the idle socket.
    wait_until(lambda: not postgres.backends(pool.application_name), timeout=10, what="backend gone")

    after = backend_pid(pool)

    assert after != before
    assert round_trip_checks  # the silent-socket shortcut did not hand out the dead one


def test_a_broken_connection_gets_the_real_check(postgres, round_trip_checks):
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.close()
        with pytest.raises(psycopg.OperationalError):
            check_pooled_connection(conn)

    assert round_trip_checks == [1]
