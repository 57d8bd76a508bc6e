"""The conversations' commands fail in one line when the database is down (found by an audit:
sweep_streaming and rescore_sentiment printed ~110 lines of psycopg and pool traceback)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage_without_database(*args: str) -> subprocess.CompletedProcess[str]:
    """manage.py against a PostgreSQL that isn't there (a port nothing listens on)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    own = ("DJANGO_", "JWT_", "DATABASE_", "REDIS_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(own)}
    env.update(
        DJANGO_DEBUG="true",
        DATABASE_URL=f"postgres://lia@127.0.0.1:{port}/lia",
        DATABASE_POOL_TIMEOUT="1",
        DATABASE_CONNECT_TIMEOUT="1",
    )
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command", [["sweep_streaming"], ["rescore_sentiment"], ["rescore_sentiment", "--since", "2024-01-01"]]
)
def test_an_unreachable_database_is_one_line_and_a_failure(command):
    result = manage_without_database(*command)

    assert result.returncode == 1
    # Around it: the system checks' notes and the pool's log (from its thread, before or after it)
    # of why it couldn't connect.
    assert "CommandError: database unavailable: couldn't get a connection after 1.00 sec" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
