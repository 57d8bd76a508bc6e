"""Health endpoints (CONTRACT §8) with real probes, including a database and a cache that are down."""

import json
import socket
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

pytestmark = pytest.mark.django_db


def test_health_reports_each_service(client):
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["status", "timestamp", "version", "services"]
    assert body["status"] == "healthy"
    assert body["timestamp"].endswith("Z")
    assert body["version"]
    database = body["services"]["database"]
    assert database["status"] == "healthy"
    assert database["details"]["type"] == connections["default"].vendor
    assert isinstance(database["latency_ms"], float)
    cache = body["services"]["cache"]
    assert cache["status"] == "healthy"
    assert cache["details"]["type"] in {"redis", "memory"}


def test_live_does_no_checks(client):
    response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["timestamp"].endswith("Z")


def test_ready_when_the_database_answers(client):
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_health_needs_no_auth_and_is_never_rate_limited(client, settings):
    settings.RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = 1

    assert {client.get("/health").status_code for _ in range(5)} == {200}


@pytest.fixture
def database_down(monkeypatch) -> None:
    """Point new connections at a database that refuses them: what the probe opens."""
    broken = dict(connections.settings["default"])
    if broken["ENGINE"].endswith("sqlite3"):
        broken["NAME"] = "/nonexistent-directory/lia.sqlite3"
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = probe.getsockname()[1]
        broken.update(HOST="127.0.0.1", PORT=free_port)
        broken["OPTIONS"] = {k: v for k, v in broken["OPTIONS"].items() if k != "pool"}
    monkeypatch.setitem(connections.settings, "default", broken)


def test_ready_is_503_when_the_database_is_unreachable(client, database_down):
    response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["reason"] == "database_unavailable"
    assert body["message"] == "Database connection failed"
    assert body["timestamp"].endswith("Z")


def test_health_stays_200_and_says_unhealthy_when_the_database_is_down(client, database_down):
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["services"]["database"]["status"] == "unhealthy"
    assert body["services"]["database"]["latency_ms"] is None
    assert body["services"]["database"]["details"]["error"] == "Database connection failed"
    assert client.get("/health/live").status_code == 200


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung dependency."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_ready_times_out_on_a_hung_database(client, settings, monkeypatch, silent_server):
    broken = dict(connections.settings["default"])
    if broken["ENGINE"].endswith("sqlite3"):
        pytest.skip("SQLite has no server that can hang; CI runs this against PostgreSQL")
    broken.update(HOST="127.0.0.1", PORT=silent_server)
    broken["OPTIONS"] = {k: v for k, v in broken["OPTIONS"].items() if k != "pool"}
    monkeypatch.setitem(connections.settings, "default", broken)
    settings.HEALTH_CHECK_TIMEOUT = 0.3

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["reason"] == "database_timeout"
    assert response.json()["message"] == "Database health check timed out after 0.3s"


@pytest.fixture
def cache_down(settings):
    """The cache is a Redis nobody listens on, degrading to misses as production's does."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }


def test_cache_down_makes_health_degraded(client, cache_down):

    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["services"]["cache"]["status"] == "degraded"
    assert body["services"]["cache"]["details"] == {"type": "redis", "error": "Cache unavailable"}
    assert body["services"]["database"]["status"] == "healthy"


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_probes_answer_whatever_host_they_name(client, settings, path):
    """A platform's probe names the server by its address (Kubernetes sends the pod's IP as
    Host): found by an audit answering 400, so the pod would never have been ready. The API
    still refuses hosts it isn't served under."""
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.DEBUG = False

    probe = client.get(path, HTTP_HOST="10.0.0.5:8000")
    api = client.get("/api/v1/chat/models", HTTP_HOST="10.0.0.5:8000")
    root = client.get("/", HTTP_HOST="10.0.0.5:8000")

    assert probe.status_code == 200
    assert api.status_code == 400
    assert root.status_code == 400


# --- manage.py healthcheck ------------------------------------------------------------------------


def healthcheck(out: StringIO) -> dict[str, dict]:
    """Run the command; what it printed of each service, by name."""
    call_command("healthcheck", stdout=out)
    return services_in(out)


def services_in(out: StringIO) -> dict[str, dict]:
    lines = [line.split(": ", 1) for line in out.getvalue().splitlines() if ": " in line]
    return {name: json.loads(result) for name, result in lines}


def test_the_healthcheck_command_reports_each_service_and_succeeds(db):
    out = StringIO()

    services = healthcheck(out)

    assert services["database"]["status"] == "healthy"
    assert services["database"]["details"] == {"type": connections["default"].vendor}
    assert services["cache"]["status"] == "healthy"
    assert out.getvalue().splitlines()[-1] == "healthy"


def test_the_healthcheck_command_fails_when_the_database_is_unreachable(db, database_down):
    out = StringIO()

    with pytest.raises(CommandError, match=r"^database unhealthy$"):
        healthcheck(out)

    database = services_in(out)["database"]
    assert (database["status"], database["details"]["error"]) == ("unhealthy", "Database connection failed")


def test_the_healthcheck_command_succeeds_with_the_cache_down(db, cache_down):
    out = StringIO()

    services = healthcheck(out)

    assert services["cache"] == {
        "status": "degraded",
        "latency_ms": None,
        "details": {"type": "redis", "error": "Cache unavailable"},
    }
    assert services["database"]["status"] == "healthy"
    assert out.getvalue().splitlines()[-1] == "degraded (cache)"
