"""`manage.py serve`, the Docker image's command: several daphne workers on one socket, stopped
together by SIGTERM (their open streams stored as interrupted), and a dead worker takes the
others down so the platform restarts the container."""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from lia.testing.servers import BASE_DIR, child_pids, live_environment, wait_until
from tests.faults.conftest import chat, chat_body, open_stream, register


@contextmanager
def serving(live, workers: int = 2, server: str = "daphne") -> Iterator[tuple[subprocess.Popen, str]]:
    process = subprocess.Popen(  # noqa: S603
        [
            *(sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", "0"),
            *("--workers", str(workers), "--server", server),
        ],
        cwd=BASE_DIR,
        env=live_environment(live.environment()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert first_line.startswith("Lia serving on http://"), first_line
        url = first_line.split()[3]
        wait_until(lambda: httpx.get(f"{url}/health/live", timeout=2).status_code == 200, timeout=60, what="serve")
        yield process, url
    finally:
        for pid in child_pids(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_workers_share_the_socket_and_stop_together_on_sigterm(live, server):
    live.fake.script(chunks=[f"w{i} " for i in range(40)], delay=0.1)
    with serving(live, workers=2, server=server) as (process, url):
        workers = child_pids(process.pid)
        assert len(workers) == 2
        with httpx.Client(base_url=url, timeout=30) as client:
            token = register(client)
            assert chat(client, token, chat_body("Hi"))[1][-1][0] == "done"
            with open_stream(client, token, chat_body("A long one")) as stream:
                stream.read_until(chunks=2)
                process.send_signal(signal.SIGTERM)  # the workers end it as a disconnect
                assert process.wait(timeout=20) == 0
        output = process.stdout.read()

    assert not any(_alive(pid) for pid in workers)
    # Requests are logged once, as Lia's JSON access lines (found by an audit: daphne's workers
    # also wrote their own plain-text access log line for each one).
    requests = [line for line in output.splitlines() if "/api/v1/chat/stream" in line]
    assert requests
    assert all(line.startswith("{") for line in requests), requests
    statuses = [status for role, status, _ in live.messages() if role == "assistant"]
    assert statuses == ["complete", "interrupted"]


def test_a_dead_worker_stops_the_others_and_the_command_fails(live):
    with serving(live, workers=2) as (process, _):
        first, second = child_pids(process.pid)
        os.kill(first, signal.SIGKILL)

        assert process.wait(timeout=20) != 0
        wait_until(lambda: not _alive(second), timeout=5, what="the other worker to stop")


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_workers_stop_when_serve_is_killed(live, server):
    """Found by an audit: SIGKILLed (the OOM killer, a supervisor without process groups),
    serve left its workers serving its port, and a restarted serve was refused it ("address in
    use"). They get SIGTERM when it dies, and stop as on a shutdown."""
    with serving(live, workers=2, server=server) as (process, url):
        workers = child_pids(process.pid)
        process.kill()
        process.wait()
        try:
            wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=20, what="the workers to stop")
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{url}/health/live", timeout=2)
        finally:
            for pid in filter(_alive, workers):  # no longer serve's children: serving() can't find them
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
