"""Summarise a py-spy `--format raw` profile (collapsed stacks): `python -m bench.stacks FILE [--top 40]`.

Prints the share of samples per thread kind, the top frames by self time, the top frames by
inclusive time, and the inclusive share of each package (lia apps, django, openai, httpx2,
twisted, psycopg, asgiref, …), which is where a stream's CPU goes.
"""

import argparse
import re
from collections import Counter
from pathlib import Path

_FILE = re.compile(r"\((?P<file>[^:()]+):\d+\)$")


# Where a sample's CPU goes: the first category whose marker is in the stack (in this order).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sentiment: the llm_separate JSON call", ("sentiment/analyzers/llm_separate.py",)),
    ("provider: opening the stream (SDK request build + send)", ("AsyncCompletions.create",)),
    ("provider: reading + parsing chunks (SDK AsyncStream)", ("openai/_streaming.py",)),
    ("provider: adapter + resilience pump", ("llm/providers/", "llm/resilience.py")),
    ("turn_finish (final save, sync_to_async)", ("turn_finish",)),
    ("chat view: DRF auth, validation, turn_start", ("rest_framework/views.py",)),
    ("SSE generator (conversations/streaming.py)", ("conversations/streaming.py",)),
    ("Django ASGI handler + middleware", ("django/core/handlers/",)),
    ("asgiref thread hops", ("asgiref/",)),
    (
        "server: HTTP protocol + socket I/O",
        (
            "twisted/web/",
            "twisted/internet/tcp.py",
            "twisted/internet/abstract.py",
            "daphne/http_protocol.py",
            "daphne/access.py",
            "daphne/server.py:2",
            "uvicorn/protocols/",
            "granian/",
        ),
    ),
)


def category_of(frames: list[str]) -> str:
    for name, markers in CATEGORIES:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    if frames and any(part in frames[-1] for part in ("asyncio/", "selectors.py", "threading.py", "thread.py")):
        return "event loop, threads: scheduling and waiting"
    return "other"


def package_of(frame: str) -> str:
    match = _FILE.search(frame)
    if not match:
        return "?"
    path = match["file"]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    head = path.split("/", 1)[0]
    if head.endswith(".py"):
        head = head[:-3]
    return head or "?"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summary(stacks: list[tuple[list[str], int]], top: int) -> str:
    total = sum(count for _, count in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for frames, count in stacks:
        categories[category_of(frames)] += count
        threads[
            "other threads (sync_to_async, pools)" if "threading.py" in frames[0] else "main thread (event loop)"
        ] += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        for package in {package_of(frame) for frame in frames}:
            packages[package] += count
    lines = [f"{total} samples"]
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in threads.most_common()]
    lines += ["", "where the CPU goes (first matching category):"]
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in categories.most_common()]
    lines += ["", "inclusive share by package:"]
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in packages.most_common(top)]
    lines += ["", "self time:"]
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    stacks = [item for path in args.files for item in load(path)]
    print(summary(stacks, args.top))


if __name__ == "__main__":
    main()
