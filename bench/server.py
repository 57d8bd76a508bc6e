"""Lia under a production ASGI server, in child processes, on 127.0.0.1 and a kernel-chosen port.

daphne and uvicorn (lia.uvicorn_worker, as production runs it) adopt sockets the runner bound and
put in listen mode itself (so the listen backlog is ours, not daphne's Twisted default of 50): one
socket per worker, all on one port (SO_REUSEPORT, as `manage.py serve` runs them). granian binds
its own port (a free one found just before) and runs its own workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lia.management.commands.serve import listening_sockets, worker_command

ROOT = Path(__file__).resolve().parent.parent
APP = "lia.asgi:application"
FLOOR_APP = "bench.floor:application"  # the bare proxy (`--floor`)
DURABLE_FLOOR_APP = "bench.floor:durable_application"  # plus a read and a commit (`--floor-durable`)
SERVERS = ("daphne", "uvicorn", "granian")


def server_available(kind: str) -> bool:
    if kind == "daphne":
        return True
    try:
        if kind == "uvicorn":
            import uvicorn  # noqa: F401
        else:
            import granian  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes(pid: int) -> int:
    return proc_status(pid)[0]


def proc_status(pid: int) -> tuple[int, int]:
    """(resident bytes, threads) of `pid`."""
    rss = threads = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


@dataclass
class LiaServer:
    kind: str
    workers: int
    env: dict[str, str]
    log_path: Path
    backlog: int = 2048
    daphne_verbosity: int = 1
    uvicorn_loop: str = "auto"
    tracemalloc_dir: Path | None = None  # daphne only: run it under bench.traced
    app: str = APP
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    url: str = ""
    _sockets: list[socket.socket] = field(default_factory=list)
    _log: IO[bytes] | None = None

    def commands(self) -> list[tuple[list[str], tuple[int, ...]]]:
        python = sys.executable
        if self.kind == "granian":
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            command = [
                python,
                "-m",
                "granian",
                "--interface",
                "asginl",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(self.workers),
                "--backlog",
                str(self.backlog),
                "--no-ws",
                "--log-level",
                "warning",
                "--loop",
                "uvloop" if self.uvicorn_loop != "asyncio" else "asyncio",
                self.app,
            ]
            return [(command, ())]
        # As the Docker image runs them (`manage.py serve`): a socket per worker on one port
        # (SO_REUSEPORT); daphne with its access log on stdout at its default verbosity 1 (serve: 0).
        self._sockets = listening_sockets("127.0.0.1", 0, count=self.workers, backlog=self.backlog)
        if self.kind == "daphne":
            module = "bench.traced" if self.tracemalloc_dir else "daphne"
            verbosity = str(self.daphne_verbosity)
            commands = [
                ([python, "-m", module, "--fd", str(s.fileno()), "-v", verbosity, self.app], (s.fileno(),))
                for s in self._sockets
            ]
        else:
            options = ["--loop", self.uvicorn_loop, "--app", self.app]
            commands = [
                ([*worker_command("uvicorn", s.fileno(), backlog=self.backlog), *options], (s.fileno(),))
                for s in self._sockets
            ]
        for sock in self._sockets:
            sock.set_inheritable(True)
        self.url = f"http://127.0.0.1:{self._sockets[0].getsockname()[1]}"
        return commands

    def start(self, timeout: float = 60.0) -> LiaServer:
        commands = self.commands()
        if self.tracemalloc_dir is not None:
            self.tracemalloc_dir.mkdir(parents=True, exist_ok=True)
            self.env = {**self.env, "BENCH_TRACEMALLOC_DIR": str(self.tracemalloc_dir)}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        for command, fds in commands:
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env,
                    pass_fds=fds,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()  # the workers that did start (each in a session of its own) go too
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited with {process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/health/live", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} did not answer /health/live within {timeout:.0f} s; see {self.log_path}")

    def pids(self) -> list[int]:
        return [pid for process in self.processes for pid in process_tree(process.pid)]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids())

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        if self._log is not None:
            self._log.close()
            self._log = None
