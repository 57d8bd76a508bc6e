"""The OpenAPI description (lia/openapi.py) is valid, served, and true of the running app.

schemathesis loads the schema from the ASGI application itself and fuzzes every operation
in-process, signed in as a test user, with all of its checks: no 5xx, every status, header,
content type and body (each event of the chat stream included) as documented, schema-valid
data accepted, schema-invalid data refused, no operation that ignores missing credentials,
405 for undocumented methods. A fixed seed and a bounded number of examples per operation
keep a CI pass to a few minutes.
"""

import json
import re
from io import StringIO

import pytest
import schemathesis
import yaml
from django.core.management import call_command
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test

from accounts.tokens import token_issue
from conftest import Persona
from conversations.models import Conversation, Message
from lia.asgi import application

MAX_EXAMPLES = 100  # RELIABILITY 31: at least 100 per operation
SEED = 20251203

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # Every built-in check, stated rather than left to schemathesis' defaults.
        "checks": {"enabled": True},
        # Read every stream to its end, so each event is checked (the default stops at 20).
        "max-stream-events": 10_000,
        # Both schema-valid and schema-invalid data; NUL characters included. The credentials are
        # ours (a Bearer token), not random values for the documented auth cookie.
        "generation": {"mode": "all", "allow-x00": True, "with-security-parameters": False},
        "operations": [
            # Schema-valid requests the contract itself refuses, for reasons a schema can't express:
            # an email or username already taken is a 400 (CONTRACT §5.1) ...
            {
                "include-operation-id": "auth_register",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "409", "429"]}},
            },
            # ... and so is a stream request whose last user item has no text part (§7.5); a
            # conversation id that isn't the caller's is a 404 (§7.6).
            {
                "include-operation-id": "chat_stream",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "404", "429"]}},
            },
        ],
    }
)

schema = schemathesis.openapi.from_asgi("/api/v1/schema", application, config=CONFIG)

FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture
def fuzzed_app(transactional_db, settings, alice: Persona, bob: Persona) -> Persona:
    """The app as fuzzing finds it: alice signed in with a conversation, bob with one of his own."""
    # The limits have their own tests (and their 429s their own schema check, below); here they
    # would turn most register/login examples into 429s and hide the validation paths.
    settings.RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = 1_000_000
    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 1_000_000
    for persona in (alice, bob):
        conversation = Conversation.objects.create(user=persona.user, title=f"{persona.user.username}'s chat")
        Message.objects.create(conversation=conversation, role="user", content="Hello")
        Message.objects.create(conversation=conversation, role="assistant", content="Hi!")
    return alice


def bearer(persona: Persona) -> dict[str, str]:
    # A fresh token per request: logout and refresh spend the one they are given.
    return {"Authorization": f"Bearer {token_issue(user=persona.user).value}"}


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_conforms_to_the_schema(case, fuzzed_app):
    case.call_and_validate(headers=bearer(fuzzed_app))


def test_links_between_operations_hold(fuzzed_app):
    """Stateful: history → open, rename, delete the listed conversation (use-after-free included)."""

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):
            return {"headers": bearer(fuzzed_app)}

    run_state_machine_as_test(
        Machine,
        settings=hypothesis_settings(
            max_examples=15,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_rate_limited_answers_match_the_schema(transactional_db, settings, alice):
    settings.RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = 1
    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 1
    login = schema["/api/v1/auth/login"]["POST"].Case(body={"email": "nobody@example.com", "password": "x"})
    stream = schema["/api/v1/chat/stream"]["POST"].Case(body={"message": "Hi", "provider": "offline"})

    for case, headers in ((login, {}), (stream, alice.bearer)):
        first = case.call(headers=headers)
        limited = case.call(headers=headers)

        assert first.status_code != 429
        assert limited.status_code == 429
        case.validate_response(limited, headers=headers)


def test_a_spent_token_budget_matches_the_schema(transactional_db, settings, alice):
    settings.CHAT_DAILY_TOKEN_BUDGET = 1
    stream = schema["/api/v1/chat/stream"]["POST"].Case(body={"message": "Hi", "provider": "offline"})

    first = stream.call(headers=alice.bearer)
    refused = stream.call(headers=alice.bearer)

    assert first.status_code == 200
    assert refused.status_code == 429
    stream.validate_response(refused, headers=alice.bearer)


def test_schema_passes_drf_spectacular_validation(tmp_path):
    """`manage.py spectacular --validate --fail-on-warn`: valid OpenAPI 3.1, and no view left to guess."""
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out), stdout=StringIO())

    document = yaml.safe_load(out.read_text())
    assert document["openapi"] == "3.1.0"


def test_every_contract_operation_is_described(client):
    document = client.get("/api/v1/schema").json()

    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/chat/stream"),
        ("GET", "/api/v1/chat/history"),
        ("GET", "/api/v1/chat/conversation/{conversation_id}"),
        ("DELETE", "/api/v1/chat/conversation/{conversation_id}"),
        ("DELETE", "/api/v1/chat/conversations"),
        ("PATCH", "/api/v1/chat/conversation/{conversation_id}/rename"),
        ("GET", "/api/v1/chat/models"),
        ("GET", "/api/v1/chat/methods"),
        ("GET", "/health"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
    }
    public = {"auth_register", "auth_login", "auth_logout", "chat_models", "chat_methods"}
    for item in document["paths"].values():
        for operation in item.values():
            if operation["operationId"] in public or operation["operationId"].startswith("health"):
                assert "security" not in operation
            else:
                assert operation["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
                assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_the_stream_is_described_as_server_sent_events(client):
    document = client.get("/api/v1/schema").json()

    success = document["paths"]["/api/v1/chat/stream"]["post"]["responses"]["200"]["content"]
    assert list(success) == ["text/event-stream"]
    events = [variant["properties"]["event"]["const"] for variant in success["text/event-stream"]["schema"]["oneOf"]]
    assert events == ["start", "thought", "chunk", "sentiment", "done", "error"]


@pytest.mark.parametrize(
    ("query", "headers", "content_type"),
    [
        ("", {}, "application/json"),
        ("?format=json", {}, "application/json"),
        ("?format=yaml", {}, "application/yaml"),
        ("", {"Accept": "application/yaml"}, "application/yaml"),
        ("", {"Accept": "application/vnd.oai.openapi+json"}, "application/vnd.oai.openapi+json"),
        ("", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, "application/json"),
    ],
)
def test_schema_is_served_as_json_or_yaml(client, query, headers, content_type):
    response = client.get(f"/api/v1/schema{query}", headers=headers)

    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    body = response.content.decode()
    document = yaml.safe_load(body) if "yaml" in content_type else json.loads(body)
    assert document["info"]["title"] == "Lia API"


def test_schema_and_docs_are_public_even_with_a_bad_cookie(client):
    client.cookies["access_token"] = "garbage"

    assert client.get("/api/v1/schema").status_code == 200
    assert client.get("/api/v1/docs").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/docs/redoc"])
def test_docs_pages_use_our_own_assets(client, path):
    """Swagger UI and Redoc come from our static files (drf-spectacular-sidecar): no third-party
    script runs on the API's origin."""
    response = client.get(path)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn." not in page
    # Nothing from another origin, fonts included (Redoc's template linked Google Fonts).
    assert re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", page) == []
    if path.endswith("redoc"):  # its bundle would fetch Redocly's logo from their CDN
        assert response["Content-Security-Policy"] == "img-src 'self' data:; font-src 'self' data:"
    assert "/api/v1/schema" in page


@pytest.mark.parametrize("path", ["/api/v1/schema", "/api/v1/docs", "/api/v1/docs/redoc"])
def test_schema_and_docs_errors_are_json(client, path):
    response = client.post(path, headers={"Origin": "http://localhost:5173"})

    assert response.status_code == 405
    assert response.json() == {"error": {"message": "Method Not Allowed"}}


def test_an_unacceptable_accept_header_is_a_json_406(client):
    response = client.get("/api/v1/schema", headers={"Accept": "text/csv"})

    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert "message" in response.json()["error"]
