"""Django's PostgreSQL backend, with a better connection check for the psycopg pool.

Django builds the pool with psycopg_pool's plain check when CONN_HEALTH_CHECKS is on: a round
trip to the server (an empty query) every time a connection is handed out, so every request
paid one more round trip before its first query. This backend swaps it for
`check_pooled_connection` when the pool is created, which does two things differently:

- A connection whose socket has stayed silent since it was put back is handed out without
  asking the server. A server that ends a session (restart, pg_terminate_backend(),
  idle_session_timeout) sends its FATAL message, or at least the end of the stream, first; only
  a connection with something to read, or one psycopg already knows is broken, gets the real
  check. (What neither check catches quickly is a peer that vanished without a word: the round
  trip would wait for TCP to give up too.)
- When the real check fails, the pool checks all its idle connections at once
  (`pool.check()` replaces the broken ones in the background). When PostgreSQL restarts, all
  the idle connections die together, and trying them one by one, each after psycopg_pool's
  reconnection backoff (about 1 s, then 2 s, 4 s ...), outlasted the 3 s pool timeout: the
  first request after the event got a 503 although PostgreSQL was up
  (tests/faults/test_postgres_down).
"""

import select
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def _silent_since_returned(conn: Any) -> bool:
    """Nothing has arrived on the connection's socket, and psycopg sees nothing wrong with it.
    (poll, not select: a server process with a thousand open streams has descriptors past
    select's 1024.)"""
    if conn.closed or conn.broken:
        return False
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except Exception:  # no socket any more: let the real check say what is wrong
        return False


def check_pooled_connection(conn: Any) -> None:
    if _silent_since_returned(conn):
        return
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        pool = getattr(conn, "_pool", None)  # set by the pool before it runs its check
        if isinstance(pool, ConnectionPool):
            pool.check()
        raise


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        # The check Django set up (CONN_HEALTH_CHECKS), in psycopg_pool's private attribute.
        if pool is not None and getattr(pool, "_check", None) is ConnectionPool.check_connection:
            pool._check = check_pooled_connection
        elif pool is not None and not hasattr(pool, "_check"):
            raise ImproperlyConfigured("psycopg_pool.ConnectionPool no longer has _check: see lia.db.postgresql")
        return pool
