"""pytest fixtures for tests that attack real servers, loaded for the whole suite (pytest.ini:
-p lia.testing.pytest_plugin).

* `postgres_server` (session): a throwaway PostgreSQL cluster with a migrated template database.
* `postgres`: that cluster, running and unfrozen again after the test whatever it did to it.
* `redis_server`: a fresh throwaway Redis for this test, killed after it.
* `live`: a `LiveStack` for this test: its own database (cloned from the template), its own
  cache key prefix and application name, the test's FakeLLMServer as OpenAI and Gemini, and
  `live.start(...)` to serve Lia with daphne on it (as many workers as the test wants).

Without PostgreSQL or Redis installed these tests are skipped on a developer's machine, and fail
under CI=true: a green CI must mean they ran. Every process started here is killed at teardown,
also when the test fails; daphne's log is printed then (pytest shows it for failed tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest

from lia.management.commands.serve import DEFAULT_SERVER
from lia.testing.servers import LiveLia, PostgresServer, RedisServer, ServerUnavailable, run_manage
from llm.testing.fake_server import FakeLLMServer

TEMPLATE_DATABASE = "lia_template"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "faults: starts its own PostgreSQL, Redis and daphne (independent of DATABASE_URL/REDIS_URL, "
        "so CI runs it once)",
    )


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: the fault tests must run in CI", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
    try:
        server.start()
        server.create_database(TEMPLATE_DATABASE)
        run_manage("migrate", "--noinput", env={"DATABASE_URL": server.url(TEMPLATE_DATABASE)})
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    yield postgres_server
    if postgres_server.paused:
        postgres_server.resume()
    postgres_server.start()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield server.start()
    finally:
        server.close()


@dataclass
class LiveStack:
    """One test's Lia deployment: its database, cache prefix and daphne workers."""

    postgres: PostgresServer
    fake: FakeLLMServer
    log_dir: Path
    database: str = field(default_factory=lambda: f"lia_live_{uuid.uuid4().hex[:12]}")
    application_name: str = field(default_factory=lambda: f"lia-live-{uuid.uuid4().hex[:8]}")
    cache_prefix: str = field(default_factory=lambda: f"lia-live-{uuid.uuid4().hex[:8]}")
    servers: list[LiveLia] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.postgres.create_database(self.database, template=TEMPLATE_DATABASE)

    @property
    def database_url(self) -> str:
        return self.postgres.url(self.database)

    def environment(self, *, redis: RedisServer | None = None, **extra: Any) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "DATABASE_APPLICATION_NAME": self.application_name,
            "REDIS_URL": redis.url if redis else "",
            "CACHE_KEY_PREFIX": self.cache_prefix,
            "OPENAI_BASE_URL": self.fake.openai_base_url,
            "OPENAI_API_KEY": "sk-fake",
            "GEMINI_BASE_URL": self.fake.gemini_base_url,
            "GEMINI_API_KEY": "g-fake",
        }
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def start(
        self,
        *,
        redis: RedisServer | None = None,
        application_close_timeout: float = 10.0,
        server: str = DEFAULT_SERVER,
        **env: Any,
    ) -> LiveLia:
        """Serve Lia with the production server (or `server="daphne"`) on this stack; keyword
        arguments become environment variables."""
        log_path = self.log_dir / f"{server}-{len(self.servers)}.log"
        lia = LiveLia(
            env=self.environment(redis=redis, **env),
            log_path=log_path,
            application_close_timeout=application_close_timeout,
            server=server,
        )
        self.servers.append(lia)
        return lia.start()

    def rows(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Read the stack's database directly (what is stored, whatever Lia answers)."""
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def messages(self) -> list[tuple[str, str, str]]:
        """(role, status, content) of every stored message, in order."""
        return [
            (role, status, content)
            for role, status, content in self.rows(
                "SELECT role, status, content FROM conversations_message ORDER BY created_at, id"
            )
        ]


@pytest.fixture
def live(postgres: PostgresServer, fake_llm: FakeLLMServer, tmp_path: Path) -> Iterator[LiveStack]:
    stack = LiveStack(postgres=postgres, fake=fake_llm, log_dir=tmp_path)
    try:
        yield stack
    finally:
        for server in stack.servers:
            server.kill()
        for server in stack.servers:
            log = server.log()
            if log:
                print(f"--- {server.log_path.name} ---\n{log[-20_000:]}")  # noqa: T201  (shown on failure)
