"""Does login's answer time tell an attacker which emails exist? `python -m bench.login_timing
[--attempts 50]` (RELIABILITY 10c: a benchmark, not a test).

In-process, on a throwaway SQLite database, with the production password hashers (Argon2 first)
and rate limits off: `--attempts` logins with a wrong password for an existing account, and as
many with an unknown email, interleaved. Prints the median and p90 of each and how far apart the
medians are; the requirement is at most 10 %. (The tests prove the cause: both cases run the
hasher exactly once, accounts/tests/test_auth_api.py::test_login_hashes_once_whether_or_not_the_email_exists.)
"""

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

PASSWORD = "Sup3rSecret"  # noqa: S105 - a throwaway account in a throwaway database


def measure(attempts: int) -> dict[str, object]:
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from accounts.models import User

    setup_test_environment()  # the test client's host, and nothing else
    call_command("migrate", verbosity=0)
    User.objects.create_user(email="known@example.com", username="known", password=PASSWORD)
    client = Client()
    cases = {"wrong password": "known@example.com", "unknown email": "nobody@example.com"}
    times: dict[str, list[float]] = {name: [] for name in cases}
    bodies: dict[str, set[bytes]] = {name: set() for name in cases}
    for _ in range(3):  # warm-up
        for email in cases.values():
            client.post("/api/v1/auth/login", {"email": email, "password": "Wrong-Passw0rd"}, "application/json")
    for _ in range(attempts):
        for name, email in cases.items():
            started = time.perf_counter()
            response = client.post(
                "/api/v1/auth/login", {"email": email, "password": "Wrong-Passw0rd"}, "application/json"
            )
            times[name].append(time.perf_counter() - started)
            bodies[name].add(response.content)
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    low, high = sorted(medians.values())
    return {
        "attempts": attempts,
        "ms": {
            name: {"median": round(medians[name], 2), "p90": round(statistics.quantiles(values, n=10)[-1] * 1000, 2)}
            for name, values in times.items()
        },
        "median_difference_percent": round((high - low) / low * 100, 1),
        "bodies_identical": len(bodies["wrong password"] | bodies["unknown email"]) == 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lia-login-timing-") as directory:
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "lia.settings.base",
                "DJANGO_DEBUG": "true",  # development secrets; the hashers are production's either way
                "DATABASE_URL": f"sqlite:///{Path(directory) / 'timing.sqlite3'}",
                "REDIS_URL": "",
                "RATE_LIMIT_ENABLED": "false",
                "LOG_LEVEL": "WARNING",
            }
        )
        import django

        django.setup()
        logging.disable(logging.WARNING)
        print(json.dumps(measure(args.attempts), indent=2))


if __name__ == "__main__":
    main()
