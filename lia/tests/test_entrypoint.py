"""The Docker image's entry point (bin/docker-entrypoint): migrations, the sweep, then the
command, as the container runs them (without Docker: the script is plain sh)."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_entry_point_migrates_sweeps_and_runs_the_command_saying_the_checks_once(tmp_path):
    """Found by an audit: the system checks' messages were printed three times at every start
    (by migrate, by sweep_streaming and by serve), plain text among the JSON log lines. The
    command (serve, in the image) says them; the steps before it don't repeat them."""
    database = tmp_path / "db.sqlite3"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "LLM_"))}
    environment.pop("REDIS_URL", None)
    environment.update(
        DJANGO_SETTINGS_MODULE="lia.settings.base",
        DJANGO_DEBUG="true",
        DATABASE_URL=f"sqlite:///{database}",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}",
    )
    command = [sys.executable, "manage.py", "check"]  # says the checks, as serve does

    result = subprocess.run(  # noqa: S603 - fixed argv, our own script
        [shutil.which("sh") or "/bin/sh", "bin/docker-entrypoint", *command],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Marked 0 orphaned streaming replies as interrupted." in output
    assert output.count("(llm.I001) LLM provider 'openai' has no API key") == 1
    with sqlite3.connect(database) as tables:
        assert tables.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 10
