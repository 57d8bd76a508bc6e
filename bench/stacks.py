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
    for frames, count in stacks:
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
