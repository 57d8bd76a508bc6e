"""Run daphne under tracemalloc (`python -m bench.traced <daphne arguments>`, used by `--tracemalloc`).

SIGUSR1 writes a snapshot to $BENCH_TRACEMALLOC_DIR/<pid>-<n>.snap; the runner takes one when the
server is idle and one while the level's streams are open, and `bench.traced compare` ranks the
allocation sites that grew, per open stream. Tracing slows the server several times: use it for
memory attribution, not for timings.
"""

import argparse
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path

FRAMES = 12


def _install() -> None:
    directory = Path(os.environ["BENCH_TRACEMALLOC_DIR"])
    counter = [0]

    def dump(*_: object) -> None:
        counter[0] += 1
        tracemalloc.take_snapshot().dump(str(directory / f"{os.getpid()}-{counter[0]}.snap"))

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, dump)


def _site(trace: tracemalloc.Traceback) -> str:
    """The innermost frame outside the standard library (Lia's code or a package), `file:line`."""
    frames = list(trace)  # oldest first
    for frame in reversed(frames):
        name = frame.filename
        if "/site-packages/" in name or ("/lib/python" not in name and not name.startswith("<")):
            if name.endswith(("bench/traced.py", "daphne/__main__.py")):
                continue
            return f"{'/'.join(name.split('/site-packages/', 1)[-1].rsplit('/', 3)[-3:])}:{frame.lineno}"
    innermost = frames[-1] if frames else None
    return f"{innermost.filename.rsplit('/', 2)[-1]}:{innermost.lineno}" if innermost else "?"


def compare(before: Path, after: Path, streams: int, top: int = 25) -> str:
    """The allocation sites that grew between two snapshots, in KB per open stream."""
    old = tracemalloc.Snapshot.load(str(before))
    new = tracemalloc.Snapshot.load(str(after))
    grown: dict[str, int] = {}
    for stat in new.compare_to(old, "traceback"):
        if stat.size_diff > 0:
            site = _site(stat.traceback)
            grown[site] = grown.get(site, 0) + stat.size_diff
    total = sum(grown.values())
    lines = [f"traced Python allocations grew {total / 1024:.0f} KB: {total / 1024 / streams:.1f} KB per open stream"]
    for site, size in sorted(grown.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"{size / 1024 / streams:8.2f} KB/stream  {site}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        parser = argparse.ArgumentParser(prog="python -m bench.traced compare")
        parser.add_argument("before", type=Path)
        parser.add_argument("after", type=Path)
        parser.add_argument("--streams", type=int, required=True)
        args = parser.parse_args(sys.argv[2:])
        print(compare(args.before, args.after, args.streams))
        return
    _install()
    sys.argv = ["daphne", *sys.argv[1:]]
    runpy.run_module("daphne", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
