"""Mass assignment and over-exposure (RELIABILITY 14).

Requests carrying fields a client must never set (owner, role, status, ids, timestamps, staff
flags, sentiment, token counts) are served as if those fields were absent, and nothing of them
reaches the database. Each input serializer's writable fields are pinned, so widening what a
client can write is a deliberate change of this file. No response carries password material,
another user's email, provider keys or the system prompt.
"""

import json
import re
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import serializers

from accounts.models import User
from conftest import PASSWORD
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

REGISTER = "/api/v1/auth/register"
STREAM = "/api/v1/chat/stream"


def hostile_fields(other_user_id: int) -> dict[str, Any]:
    return {
        "user": other_user_id,
        "user_id": other_user_id,
        "owner": other_user_id,
        "id": 424242,
        "pk": 424242,
        "role": "system",
        "status": "complete",
        "sentiment_data": {"message": {"score": 1, "label": "Positive", "emotion": "forged"}},
        "sentiment_state": {"score": 1, "count": 99},
        "created_at": "2001-01-01T00:00:00Z",
        "updated_at": "2001-01-01T00:00:00Z",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "token_count": 1,
        "is_staff": True,
        "is_superuser": True,
        "is_active": False,
        "tokens_valid_after": "2001-01-01T00:00:00Z",
        "model_info": {"provider": "forged", "model": "forged", "thoughts": ["forged"]},
    }


def post(client, path: str, body: dict[str, Any], **headers: str):
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


# --- extra fields are ignored ---------------------------------------------------------------------


def test_register_ignores_privileged_fields(web, bob):
    account = {"email": "mallory@example.com", "username": "mallory", "password": "Passw0rdX"}
    body = {**account, **hostile_fields(bob.user.pk)}

    response = post(web, REGISTER, body)

    assert response.status_code == 201
    user = User.objects.get(email="mallory@example.com")
    assert (user.is_staff, user.is_superuser, user.is_active) == (False, False, True)
    assert user.pk != 424242
    assert user.created_at.year > 2001
    assert user.tokens_valid_after is None or user.tokens_valid_after.year > 2001
    assert response.json()["user"]["id"] == user.pk


def test_rename_ignores_everything_but_the_title(web, alice, bob):
    conversation = Conversation.objects.create(user=alice.user, title="Mine", sentiment_state={"count": 1})
    before = Conversation.objects.filter(pk=conversation.pk).values().get()

    response = web.patch(
        f"/api/v1/chat/conversation/{conversation.pk}/rename",
        json.dumps({"title": "Renamed", **hostile_fields(bob.user.pk)}),
        content_type="application/json",
        headers=alice.bearer,
    )

    assert response.status_code == 200
    after = Conversation.objects.filter(pk=conversation.pk).values().get()
    assert after["title"] == "Renamed"
    changed = {key for key in before if before[key] != after[key]}
    assert changed <= {"title", "updated_at"}
    assert after["updated_at"].year > 2001


async def test_a_chat_turn_ignores_forged_ownership_roles_and_results(async_web, alice, bob):
    body = {"message": "Hello there", "provider": "offline", "sentiment_method": "local", **hostile_fields(bob.user.pk)}
    body["id"] = "424242"  # the chat's `id` is the AI SDK's chat id: a string, accepted and ignored (§7.2)

    response = await async_web.post(STREAM, json.dumps(body), content_type="application/json", headers=alice.bearer)
    raw = b"".join([chunk async for chunk in response.streaming_content])

    assert response.status_code == 200
    assert b"event: done" in raw

    def stored() -> tuple[Conversation, list[Message]]:
        conversation = Conversation.objects.get()
        return conversation, list(conversation.messages.order_by("id"))

    from asgiref.sync import sync_to_async

    conversation, messages = await sync_to_async(stored)()
    assert conversation.user_id == alice.user.pk
    assert conversation.pk.version == 4
    assert conversation.created_at.year > 2001
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == "Hello there"
    assert messages[0].sentiment_data["message"]["emotion"] != "forged"
    assert messages[1].model_info["provider"] == "offline"
    assert "forged" not in json.dumps(messages[1].model_info)
    assert all(m.pk != 424242 for m in messages)
    assert messages[1].completion_tokens != 1 or messages[1].prompt_tokens != 1


# --- the writable surface is pinned -------------------------------------------------------------------

WRITABLE_FIELDS = {
    "POST /api/v1/auth/register": {"email", "username", "password"},
    "POST /api/v1/auth/login": {"email", "password"},
    "POST /api/v1/chat/stream": {
        "message",
        "messages",
        "messages[].id",
        "messages[].role",
        "messages[].parts",
        "messages[].parts[].type",
        "messages[].parts[].text",
        "conversation_id",
        "provider",
        "model",
        "sentiment_method",
        "model_settings",
        "model_settings.temperature",
        "model_settings.max_tokens",
        "model_settings.top_p",
        "model_settings.frequency_penalty",
        "model_settings.presence_penalty",
        "id",  # the AI SDK's chat id and trigger: type-checked, then ignored
        "trigger",
    },
    "GET /api/v1/chat/history": {"offset", "limit"},
    "GET /api/v1/chat/conversation/<str:conversation_id>": {"offset", "limit"},
    "PATCH /api/v1/chat/conversation/<str:conversation_id>/rename": {"title"},
}


def _writable(serializer: serializers.Serializer, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        names.add(prefix + name)
        child = field.child if isinstance(field, serializers.ListSerializer) else field
        if isinstance(child, serializers.Serializer):
            suffix = "[]." if isinstance(field, serializers.ListSerializer) else "."
            names |= _writable(child, prefix + name + suffix)
    return names


def _views(patterns: list[Any], prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
            yield prefix + str(pattern.pattern), pattern.callback.cls


def test_each_input_serializers_writable_fields_are_pinned():
    found = {}
    for route, view in _views(get_resolver().url_patterns):
        serializer = getattr(view, "InputSerializer", None)
        if serializer is None:
            continue
        methods = [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]
        method = next(m for m in methods if m != "DELETE")
        found[f"{method} /{route}"] = _writable(serializer())

    assert found == WRITABLE_FIELDS


# --- nothing sensitive goes out ---------------------------------------------------------------------

PROVIDER_KEYS = ("g-fake", "sk-fake")


async def test_no_response_exposes_secrets_or_other_users(async_web, alice, bob, fake_llm_providers, settings):
    from asgiref.sync import sync_to_async

    settings.CHAT_SYSTEM_PROMPT = "SYSTEM-PROMPT-CANARY: you are Lia."
    bob_email = bob.user.email
    hashes = await sync_to_async(lambda: [u.password for u in User.objects.all()])()
    bodies: list[bytes] = []

    async def call(method: str, path: str, body: Any = None, **headers: str) -> Any:
        kwargs: dict[str, Any] = {"headers": {**alice.bearer, **headers}}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        response = await getattr(async_web, method)(path, **kwargs)
        if response.streaming:
            bodies.append(b"".join([chunk async for chunk in response.streaming_content]))
        else:
            bodies.append(response.content)
        bodies.append(str(response.headers).encode())
        return response

    login = await call("post", "/api/v1/auth/login", {"email": alice.user.email, "password": PASSWORD})
    await call("post", "/api/v1/auth/login", {"email": bob_email, "password": "Wr0ngPassword"})
    await call("post", REGISTER, {"email": bob_email, "username": "bobby", "password": "Passw0rdX"})
    await call("get", "/api/v1/auth/me")
    await call("post", STREAM, {"message": "Hello", "provider": "gemini", "model": "gemini-2.5-flash"})
    await call("post", STREAM, {"message": "Hello", "provider": "openai", "model": "gpt-4o-401"})
    history = await call("get", "/api/v1/chat/history")
    conversation_id = history.json()[0]["id"]
    await call("get", f"/api/v1/chat/conversation/{conversation_id}")
    await call("get", "/api/v1/chat/models")
    await call("get", "/api/v1/chat/methods")
    await call("get", "/health")
    await call("post", "/api/v1/auth/refresh")

    everything = b"\n".join(bodies).decode()
    assert login.status_code == 200
    assert fake_llm_providers.requests  # the providers were really called
    assert PASSWORD not in everything
    assert "Wr0ngPassword" not in everything
    assert bob_email not in everything
    for secret in (*PROVIDER_KEYS, settings.JWT_SECRET_KEY, settings.SECRET_KEY, "SYSTEM-PROMPT-CANARY"):
        assert secret not in everything, secret
    for password_hash in hashes:
        assert password_hash not in everything
        assert password_hash.split("$")[-1] not in everything
    assert not re.search(r'"password"\s*:', everything)
    assert not re.search(r"(argon2|pbkdf2_sha256|bcrypt|md5)\$", everything)
