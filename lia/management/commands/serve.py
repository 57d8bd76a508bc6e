"""`manage.py serve`: Lia in production, one daphne process per core on one listening socket.

Lia's chat streams are CPU-bound in Python, so one process uses about one core (README
"Performance": two processes on two cores served 1.7x the streams of one). This command binds
the socket itself (with a listen backlog far above Twisted's 50, so a burst of connections is not
left to SYN retransmits) and starts the workers with `daphne --fd`: the kernel spreads new
connections over them. It supervises them as a container's main process should: SIGTERM or
SIGINT is passed to every worker, which ends its open streams as client disconnects (their
partial replies are stored, lia.shutdown); if a worker dies, the others are stopped and the
command exits non-zero, so the platform restarts the container.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lia.shutdown import SHUTDOWN_GRACE_SECONDS

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Command(BaseCommand):
    help = "Serve Lia with one daphne worker per core on one socket (the Docker image's command)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server listens on all interfaces
        parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (it is printed)")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.WEB_WORKERS or default_workers(),
            help="processes (WEB_WORKERS; default: one per core)",
        )
        parser.add_argument("--backlog", type=int, default=1024, help="listen backlog of the shared socket")

    def handle(self, *args: Any, host: str, port: int, workers: int, backlog: int, **options: Any) -> None:
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        listener = socket.create_server((host, port), backlog=backlog, reuse_port=False)
        address = listener.getsockname()
        command = [sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), "lia.asgi:application"]
        processes = [subprocess.Popen(command, pass_fds=(listener.fileno(),)) for _ in range(workers)]  # noqa: S603
        listener.close()  # the workers hold it
        self.stdout.write(f"Lia serving on http://{address[0]}:{address[1]} with {workers} daphne worker(s)")
        self.stdout.flush()

        stopping: list[int] = []
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda received, frame: stopping.append(received))
        while not stopping and all(process.poll() is None for process in processes):
            time.sleep(0.2)
        failed = [process for process in processes if process.poll() is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS + 3
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if failed and not stopping:
            codes = ", ".join(str(process.returncode) for process in failed)
            raise CommandError(f"a worker exited (code {codes}); the others were stopped")
        self.stdout.write("Lia stopped")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
