"""The conversations' commands: sweep_streaming's work, and each failing in one line when the
database is down (found by an audit: sweep_streaming and rescore_sentiment printed ~110 lines of
psycopg and pool traceback). rescore_sentiment's work is in test_rescore.py."""

import os
import socket
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Conversation, Message, TurnStatus

ROOT = Path(__file__).resolve().parents[2]


def sweep_streaming() -> str:
    out = StringIO()
    call_command("sweep_streaming", stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_sweep_streaming_marks_the_replies_a_dead_process_left_streaming(alice):
    conversation = Conversation.objects.create(user=alice.user, status=TurnStatus.STREAMING)
    Message.objects.create(conversation=conversation, role="user", content="hello")
    orphan = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="half a rep",
        status=TurnStatus.STREAMING,
        updated_at=timezone.now() - timedelta(minutes=5),
    )

    assert sweep_streaming() == "Marked 1 orphaned streaming reply as interrupted."
    assert sweep_streaming() == "Marked 0 orphaned streaming replies as interrupted."

    orphan.refresh_from_db()
    conversation.refresh_from_db()
    assert (orphan.status, orphan.content) == ("interrupted", "half a rep")
    assert conversation.status == "interrupted"


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
