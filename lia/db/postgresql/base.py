"""Django's PostgreSQL backend, with a better connection check for the psycopg pool.

psycopg_pool checks a connection before handing it out and, when the check fails, tries the
next one after its reconnection backoff (about 1 s, then 2 s, 4 s ...). When PostgreSQL
restarts, or pg_terminate_backend() ends every session of the app, all the idle connections
die together: with two of them the backoff alone outlasts the 3 s pool timeout, and the first
request after the event got a 503 although PostgreSQL was up (tests/faults/test_postgres_down).

So at the first dead connection the pool checks all its idle ones at once (`pool.check()`
replaces the broken ones in the background), and the retry, about a second later, gets a new
connection. Django builds the pool with the plain check (CONN_HEALTH_CHECKS) and takes no other;
this backend swaps it for `check_pooled_connection` when the pool is created.
"""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_pooled_connection(conn: Any) -> None:
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
