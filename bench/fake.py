"""The provider fake in its own process (`python -m bench.fake --chunks 20 --delay 0.01`).

llm.testing's FakeLLMServer (a threaded stdlib server: TCP_NODELAY, listen backlog 512, one HTTP
chunk per SSE frame) on 127.0.0.1 and a kernel-chosen port. It prints one JSON line with its
URLs, then serves until its stdin closes (the runner exiting, even by SIGKILL) or SIGTERM.
"""

import argparse
import json
import signal
import sys
import threading

from bench.client import raise_open_files_limit
from llm.testing.fake_server import FakeLLMServer


class QuietFake(FakeLLMServer):
    """Keeps no per-request record: a benchmark sends thousands of requests."""

    def _record(self, recorded: object) -> None:
        pass

    def _finish(self, recorded: object, outcome: str) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between text frames")
    parser.add_argument("--first-delay", type=float, default=0.0, help="seconds before the first frame")
    args = parser.parse_args()
    raise_open_files_limit()
    fake = QuietFake().start()
    fake.script(chunks=args.chunks, delay=args.delay, first_delay=args.first_delay)
    sys.stdout.write(json.dumps({"url": fake.url, "openai_base_url": fake.openai_base_url}) + "\n")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watcher = threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True)
    watcher.start()
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
