"""Django's PostgreSQL backend, with a better connection check for the psycopg pool.

Django builds the pool with psycopg_pool's plain check when CONN_HEALTH_CHECKS is on: a round
trip to the server (an empty query) every time a connection is handed out, so every request
paid one more round trip before its first query. This backend swaps in `check_pooled_connection`
when the pool is created, and notes when each connection goes back to it:

- A connection put back less than DATABASE_POOL_CHECK_IDLE_SECONDS ago (5 s by default), whose
  socket has stayed silent since, and that psycopg doesn't know to be broken, is handed out
  without asking the server: under load that is nearly every checkout. A server that ends a
  session (restart, pg_terminate_backend(), idle_session_timeout) sends its FATAL message, or at
  least the end of the stream, first. PgBouncer's server_check_delay (30 s by default) is the
  same bargain. Past the window, or with anything to read, the real check runs: a peer that
  dropped an idle connection without a word (a NAT or load balancer's idle timeout, a failover)
  answers it with a reset, and the pool tries another connection. TCP keepalives (settings)
  make the kernel notice such a peer on a connection idle in the pool, too.
- When the real check fails, the pool checks all its idle connections at once
  (`pool.check()` replaces the broken ones in the background). When PostgreSQL restarts, all
  the idle connections die together, and trying them one by one, each after psycopg_pool's
  reconnection backoff (about 1 s, then 2 s, 4 s ...), outlasted the 3 s pool timeout: the
  first request after the event got a 503 although PostgreSQL was up
  (tests/faults/test_postgres_down).
"""

import select
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

RETURNED_AT = "_lia_returned_at"  # set on the psycopg connection by DatabaseWrapper._close


def _recently_returned_and_silent(conn: Any) -> bool:
    """Put back within the window, nothing arrived on its socket since, and psycopg sees
    nothing wrong with it. (poll, not select: a server process with a thousand open streams
    has descriptors past select's 1024.)"""
    returned_at = getattr(conn, RETURNED_AT, None)
    if returned_at is None or time.monotonic() - returned_at > settings.DATABASE_POOL_CHECK_IDLE_SECONDS:
        return False
    if conn.closed or conn.broken:
        return False
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except Exception:  # no socket any more: let the real check say what is wrong
        return False


def check_pooled_connection(conn: Any) -> None:
    if _recently_returned_and_silent(conn):
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
        if pool is None:
            return None
        # The check Django set up (CONN_HEALTH_CHECKS), in psycopg_pool's private attribute.
        if not hasattr(pool, "_check"):
            raise ImproperlyConfigured("psycopg_pool.ConnectionPool no longer has _check: see lia.db.postgresql")
        if pool._check is ConnectionPool.check_connection:
            pool._check = check_pooled_connection
        return pool

    def _close(self) -> None:
        """Note when the connection goes back. Not with the pool's `reset` hook: a pool with one
        hands every returned connection to its worker thread (psycopg_pool's ReturnConnection)
        instead of taking it back inline, so each return woke a thread that competed for the GIL
        with the event loop, and the connection stayed out of the pool until that thread ran."""
        if self.connection is not None and self.pool is not None:
            setattr(self.connection, RETURNED_AT, time.monotonic())
        super()._close()
