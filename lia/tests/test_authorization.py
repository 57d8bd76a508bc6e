"""Who may call what (RELIABILITY 12-13), over every route of the URLconf.

The routes are read from the URLconf when the tests run, so a new endpoint joins these tests
without anyone listing it: it must answer 401 to an anonymous caller unless it is listed in
PUBLIC below (with the reason), and if it takes a conversation id (in its path or its body) it
must treat someone else's conversation exactly like one that doesn't exist.
"""

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db.models import F
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from conftest import Persona
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

# (method, route) → why it needs no credentials.
PUBLIC: dict[tuple[str, str], str] = {
    ("POST", "api/v1/auth/register"): "creates the account (CONTRACT §5.1)",
    ("POST", "api/v1/auth/login"): "exchanges credentials for a token (§5.2)",
    ("POST", "api/v1/auth/logout"): "must work without auth and without a body (§5.5)",
    ("GET", "api/v1/chat/models"): "the public model catalogue (§6.6, §10 D4)",
    ("GET", "api/v1/chat/methods"): "the public list of sentiment methods (§6.7)",
    ("GET", "health"): "hosting probes (§8)",
    ("GET", "health/live"): "hosting probes (§8)",
    ("GET", "health/ready"): "hosting probes (§8)",
    ("GET", "api/v1/schema"): "the OpenAPI description (§12 allows schema/docs pages)",
    ("GET", "api/v1/docs"): "Swagger UI over the public schema",
    ("GET", "api/v1/docs/redoc"): "Redoc over the public schema",
    ("GET", "chat"): "the built-in chat page: signs in through the public auth endpoints",
}
# Not API routes: the admin has its own (session) login, tested below; the catch-all answers 404.
NOT_API = ("admin/",)
UNIVERSAL_BODY_FIELDS = {"message": "Hello there", "title": "Renamed", "provider": "gemini"}


@dataclass(frozen=True)
class Route:
    method: str
    route: str  # as in the URLconf, e.g. "api/v1/chat/conversation/<str:conversation_id>"
    view: Any

    @property
    def id(self) -> str:
        return f"{self.method} /{self.route}"

    def path(self, **values: str) -> str:
        path = self.route
        for name, value in values.items():
            path = re.sub(rf"<(?:\w+:)?{name}>", value, path)
        return "/" + path

    @property
    def path_parameters(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.route)

    @property
    def input_fields(self) -> set[str]:
        serializer = getattr(getattr(self.view, "cls", None), "InputSerializer", None)
        return set(serializer().fields) if serializer else set()

    @property
    def conversation_in_path(self) -> bool:
        return "conversation_id" in self.path_parameters

    @property
    def conversation_in_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and "conversation_id" in self.input_fields


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def _methods(view: Any) -> list[str]:
    cls = getattr(view, "cls", None)
    if cls is not None and issubclass(cls, APIView):
        return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
    return ["GET"]  # plain Django views here (health) are GET-only


def api_routes() -> list[Route]:
    routes = []
    for route, view in _walk(get_resolver().url_patterns):
        if route in ("", "^") or route.startswith(NOT_API):
            continue
        routes.extend(Route(method, route, view) for method in _methods(view))
    return routes


ROUTES = api_routes()
PRIVATE = [r for r in ROUTES if (r.method, r.route) not in PUBLIC]
WITH_CONVERSATION = [r for r in ROUTES if r.conversation_in_path or r.conversation_in_body]


def test_the_routes_are_discovered():
    found = {(r.method, r.route) for r in ROUTES}

    assert set(PUBLIC) <= found, "a PUBLIC entry names no route"
    assert {("GET", "api/v1/auth/me"), ("POST", "api/v1/chat/stream"), ("DELETE", "api/v1/chat/conversations")} <= found
    assert {r.id for r in WITH_CONVERSATION} == {
        "POST /api/v1/chat/stream",
        "GET /api/v1/chat/conversation/<str:conversation_id>",
        "DELETE /api/v1/chat/conversation/<str:conversation_id>",
        "PATCH /api/v1/chat/conversation/<str:conversation_id>/rename",
    }


def request(client: Client, route: Route, *, conversation_id: str | None = None, **headers: str) -> Any:
    path = route.path(conversation_id=conversation_id or str(uuid.uuid4()))
    if route.method in ("POST", "PUT", "PATCH"):
        body = dict(UNIVERSAL_BODY_FIELDS)
        if conversation_id and route.conversation_in_body:
            body["conversation_id"] = conversation_id
        return client.generic(route.method, path, json.dumps(body), content_type="application/json", headers=headers)
    return client.generic(route.method, path, headers=headers)


@pytest.mark.parametrize("route", PRIVATE, ids=lambda r: r.id)
def test_anonymous_callers_get_401_with_www_authenticate(client, route):
    response = request(client, route)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": {"message": "Authentication required"}}


@pytest.mark.parametrize("route", PRIVATE, ids=lambda r: r.id)
def test_a_garbage_cookie_is_401_even_with_a_valid_bearer_token(client, alice, route):
    client.cookies["access_token"] = "not-a-token"

    response = request(client, route, **alice.bearer)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("route", [r for r in ROUTES if (r.method, r.route) in PUBLIC], ids=lambda r: r.id)
def test_public_routes_answer_without_credentials(client, route):
    response = request(client, route)

    assert response.status_code != 401, PUBLIC[(route.method, route.route)]
    assert response.status_code < 500


# --- someone else's conversation (BOLA) -----------------------------------------------------------


def snapshot(persona: Persona) -> list[dict[str, Any]]:
    conversations = list(Conversation.objects.filter(user=persona.user).order_by("pk").values())
    messages = list(Message.objects.filter(conversation__user=persona.user).order_by("pk").values())
    return conversations + messages


@pytest.fixture
def alices_conversation(alice: Persona) -> Conversation:
    conversation = Conversation.objects.create(
        user=alice.user, title="Alice's secret plans", sentiment_state={"score": 0.5, "count": 1}
    )
    Message.objects.create(conversation=conversation, role="user", content="My secret", sentiment_data=None)
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Kept safe",
        model_info={"provider": "gemini", "model": "gemini-2.5-flash", "thoughts": None},
    )
    return conversation


@pytest.mark.parametrize("route", WITH_CONVERSATION, ids=lambda r: r.id)
def test_someone_elses_conversation_is_exactly_not_found(
    client, alice, bob, alices_conversation, fake_llm_providers, route
):
    before = snapshot(alice)

    foreign = request(client, route, conversation_id=str(alices_conversation.pk), **bob.bearer)
    unknown = request(client, route, conversation_id=str(uuid.uuid4()), **bob.bearer)

    assert foreign.status_code == 404
    assert foreign.content == unknown.content == b'{"error":{"message":"Conversation not found"}}'
    assert foreign["Content-Type"] == unknown["Content-Type"] == "application/json"
    assert snapshot(alice) == before
    assert fake_llm_providers.requests == []  # nothing was streamed into (or billed for) Alice's conversation


@pytest.mark.parametrize("route", WITH_CONVERSATION, ids=lambda r: r.id)
def test_the_owner_gets_through_the_same_request(client, alice, alices_conversation, fake_llm_providers, route):
    """The control for the test above: its 404 is the ownership check, not a malformed request."""
    response = request(client, route, conversation_id=str(alices_conversation.pk), **alice.bearer)

    assert response.status_code == 200


def test_lists_never_show_someone_elses_conversations(client, alice, bob, alices_conversation):
    history = client.get("/api/v1/chat/history", headers=bob.bearer)
    delete_all = client.delete("/api/v1/chat/conversations", headers=bob.bearer)

    assert history.json() == []
    assert delete_all.json()["deleted_count"] == 0
    assert Conversation.objects.filter(pk=alices_conversation.pk).exists()


def test_conversation_ids_are_random_uuid4(alice, alices_conversation):
    assert alices_conversation.pk.version == 4


# --- CSRF: cookie requests from other origins, on every unsafe route (RELIABILITY 7, CONTRACT §3.6) ------

UNSAFE = [r for r in ROUTES if r.method in ("POST", "PUT", "PATCH", "DELETE")]
JSON_BODY = [r for r in UNSAFE if r.method != "DELETE" and r.input_fields]
ORIGIN_NOT_ALLOWED = {"error": {"message": "Origin not allowed"}}


def test_the_unsafe_routes_are_discovered():
    assert {r.id for r in UNSAFE} >= {
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/chat/stream",
        "DELETE /api/v1/chat/conversations",
        "PATCH /api/v1/chat/conversation/<str:conversation_id>/rename",
    }
    assert {r.id for r in JSON_BODY} >= {"POST /api/v1/chat/stream", "POST /api/v1/auth/register"}


@pytest.mark.parametrize("route", UNSAFE, ids=lambda r: r.id)
def test_a_cookie_request_from_another_origin_is_refused_and_changes_nothing(
    client, alice, alices_conversation, fake_llm_providers, route
):
    client.cookies["access_token"] = alice.token
    before = (snapshot(alice), row_counts())
    conversation_id = str(alices_conversation.pk)

    by_origin = request(client, route, conversation_id=conversation_id, Origin="https://evil.example")
    by_referer = request(client, route, conversation_id=conversation_id, Referer="https://evil.example/page")
    sibling = request(client, route, conversation_id=conversation_id, Origin="https://app.localhost:5173")

    for response in (by_origin, by_referer, sibling):
        assert response.status_code == 403
        assert response.json() == ORIGIN_NOT_ALLOWED
    assert (snapshot(alice), row_counts()) == before
    assert fake_llm_providers.requests == []
    # The control: the same request from the web client's origin gets past the check.
    allowed = request(client, route, conversation_id=conversation_id, Origin="http://localhost:5173")
    assert allowed.status_code != 403
    assert allowed.status_code < 500


@pytest.mark.parametrize("route", JSON_BODY, ids=lambda r: r.id)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_cookie_request_with_a_form_content_type_is_415_and_changes_nothing(
    client, alice, alices_conversation, fake_llm_providers, route, content_type
):
    """What a cross-site form could send without a preflight, even from an allowed origin."""
    client.cookies["access_token"] = alice.token
    before = (snapshot(alice), row_counts())
    path = route.path(conversation_id=str(alices_conversation.pk))
    body = json.dumps({**UNIVERSAL_BODY_FIELDS, "conversation_id": str(alices_conversation.pk)})

    response = client.generic(
        route.method, path, body, content_type=content_type, headers={"Origin": "http://localhost:5173"}
    )

    assert response.status_code == 415
    assert (snapshot(alice), row_counts()) == before
    assert fake_llm_providers.requests == []


# --- the admin ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/accounts/user/", "/admin/conversations/conversation/"])
def test_non_staff_users_are_refused_by_the_admin(client, alice, path):
    client.force_login(alice.user)

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_bearer_token_does_not_open_the_admin(client, admin_user):
    from accounts.tokens import token_issue

    response = client.get("/admin/", headers={"Authorization": f"Bearer {token_issue(user=admin_user).value}"})

    assert response.status_code == 302


def test_staff_without_permissions_see_no_model_pages(client, alice):
    alice.user.is_staff = True
    alice.user.save(update_fields=["is_staff"])
    client.force_login(alice.user)

    assert client.get("/admin/accounts/user/").status_code == 403
    assert client.get("/admin/conversations/conversation/").status_code == 403


# --- GET changes nothing (SameSite=Lax still sends the cookie on top-level navigations) ---------------


def row_counts() -> dict[str, int]:
    from accounts.models import RevokedToken, User

    return {
        "users": User.objects.count(),
        "revoked": RevokedToken.objects.count(),
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
        "conversation_updates": Conversation.objects.filter(updated_at__gt=F("created_at")).count(),
    }


@pytest.mark.parametrize("route", [r for r in ROUTES if r.method == "GET"], ids=lambda r: r.id)
def test_get_routes_change_nothing_and_spend_nothing(client, alice, alices_conversation, fake_llm_providers, route):
    client.cookies["access_token"] = alice.token
    before = row_counts()

    for _ in range(2):
        response = request(client, route, conversation_id=str(alices_conversation.pk))
        assert response.status_code < 500

    assert row_counts() == before
    assert fake_llm_providers.requests == []
