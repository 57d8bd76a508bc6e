"""Unicode edge cases in every text input (RELIABILITY 15): emoji, right-to-left text, combining
marks and astral characters are stored and returned exactly; NUL characters (which PostgreSQL
can't store) and unpaired surrogates (which nothing can encode) are a clean 422. Never a 500,
on SQLite or PostgreSQL."""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import serializers

from accounts.fields import StrictCharField
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
STREAM = "/api/v1/chat/stream"

EMOJI = "Hi 👋🏽 family: 👨‍👩‍👧‍👦 flags 🇩🇪"
RTL = "مرحبا \u202b\u05e9\u05dc\u05d5\u05dd\u202c and \u202eevil\u202c"  # Arabic, Hebrew, overrides
COMBINING = "e\u0301 Z\u0336a\u0335l\u0334g\u0337o\u0338 \U0001d54f\U00020000"
ZERO_WIDTH = "a\u200bb\u200dc\ufeffd\u2028e\u2029f"
INTACT = [EMOJI, RTL, COMBINING, ZERO_WIDTH]

# Raw JSON text, so the escapes reach the server undecoded.
NUL = '"abc\\u0000def"'
LONE_HIGH = '"abc\\ud800def"'
LONE_LOW = '"\\udfff"'
PAIRED = '"\\ud83d\\ude00"'  # 😀 as a surrogate pair: valid


def post_raw(client, path: str, fields: dict[str, str], *, method: str = "post", **headers: str):
    """A JSON object built from raw JSON values (`fields` values are JSON text)."""
    body = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}"
    return getattr(client, method)(path, body, content_type="application/json", headers=headers)


def assert_clean_422(response, field: str, phrase: str) -> None:
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["detail"][0]["loc"][-1] == field
    assert phrase in body["error"]["message"]


# --- accounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "phrase"), [(NUL, "NUL"), (LONE_HIGH, "surrogate"), (LONE_LOW, "surrogate")])
@pytest.mark.parametrize("field", ["email", "username", "password"])
def test_register_refuses_unstorable_text(web, field, value, phrase):
    fields = {"email": '"ada@example.com"', "username": '"ada"', "password": '"Passw0rdX"', field: value}

    assert_clean_422(post_raw(web, REGISTER, fields), field, phrase)


@pytest.mark.parametrize(("value", "phrase"), [(NUL, "NUL"), (LONE_HIGH, "surrogate")])
@pytest.mark.parametrize("field", ["email", "password"])
def test_login_refuses_unstorable_text(web, alice, field, value, phrase):
    fields = {"email": '"alice@example.com"', "password": '"x"', field: value}

    assert_clean_422(post_raw(web, LOGIN, fields), field, phrase)


@pytest.mark.parametrize(
    "password", ["Aa1" + EMOJI, "Aa1" + RTL, "Aa1" + COMBINING, "Aa1 " + ZERO_WIDTH, "Aa1" + json.loads(PAIRED) * 5]
)
def test_any_unicode_password_works_end_to_end_byte_exactly(web, password):
    registered = post_raw(
        web, REGISTER, {"email": '"ada@example.com"', "username": '"ada"', "password": json.dumps(password)}
    )
    login = post_raw(web, LOGIN, {"email": '"ada@example.com"', "password": json.dumps(password)})
    near_miss = post_raw(web, LOGIN, {"email": '"ada@example.com"', "password": json.dumps(password[:-1])})

    assert registered.status_code == 201
    assert login.status_code == 200
    assert near_miss.status_code == 401


@pytest.mark.parametrize("username", ["ädä", "ada👋", "عربي", "ada\u200b"])
def test_usernames_outside_the_contract_alphabet_are_a_422(web, username):
    fields = {"email": '"ada@example.com"', "username": json.dumps(username), "password": '"Passw0rdX"'}

    assert_clean_422(post_raw(web, REGISTER, fields), "username", "letters, digits")


# --- chat ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", INTACT, ids=["emoji", "rtl", "combining", "zero-width"])
def test_messages_and_titles_are_stored_and_returned_intact(web, alice, text):
    started = post_raw(web, STREAM, {"message": json.dumps(text), "provider": '"offline"'}, **alice.bearer)
    conversation = Conversation.objects.get()
    renamed = post_raw(
        web,
        f"/api/v1/chat/conversation/{conversation.pk}/rename",
        {"title": json.dumps(text)},
        method="patch",
        **alice.bearer,
    )
    detail = web.get(f"/api/v1/chat/conversation/{conversation.pk}", headers=alice.bearer).json()
    history = web.get("/api/v1/chat/history", headers=alice.bearer).json()

    assert started.status_code == 200
    assert renamed.status_code == 200
    assert Message.objects.get(role="user").content == text
    assert detail["messages"][0]["content"] == text
    assert detail["title"] == history[0]["title"] == text


def test_the_automatic_title_of_an_astral_message_is_whole_characters(web, alice):
    text = "😀" * 60

    post_raw(web, STREAM, {"message": json.dumps(text), "provider": '"offline"'}, **alice.bearer)

    assert Conversation.objects.get().title == "😀" * 50 + "..."


@pytest.mark.parametrize(("value", "phrase"), [(NUL, "NUL"), (LONE_HIGH, "surrogate"), (LONE_LOW, "surrogate")])
@pytest.mark.parametrize("field", ["message", "model", "conversation_id"])
def test_the_stream_refuses_unstorable_text(web, alice, field, value, phrase):
    fields = {"message": '"Hello"', "provider": '"offline"', field: value}

    assert_clean_422(post_raw(web, STREAM, fields, **alice.bearer), field, phrase)
    assert not Message.objects.exists()


@pytest.mark.parametrize(("value", "phrase"), [(NUL, "NUL"), (LONE_HIGH, "surrogate")])
def test_ai_sdk_parts_refuse_unstorable_text(web, alice, value, phrase):
    part = '{"type":"text","text":' + value + "}"
    body = '{"messages":[{"id":"1","role":"user","parts":[' + part + "]}]}"

    response = web.post(STREAM, body, content_type="application/json", headers=alice.bearer)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "messages", 0, "parts", 0, "text"]  # as FastAPI's
    assert response.json()["error"]["details"]["errors"][0]["field"] == "messages.0.parts.0.text"


def test_a_surrogate_pair_is_an_ordinary_character(web, alice):
    response = post_raw(web, STREAM, {"message": PAIRED, "provider": '"offline"'}, **alice.bearer)

    assert response.status_code == 200
    assert Message.objects.get(role="user").content == "😀"


@pytest.mark.parametrize(("value", "phrase"), [(NUL, "NUL"), (LONE_HIGH, "surrogate")])
def test_rename_refuses_unstorable_text(web, alice, value, phrase):
    conversation = Conversation.objects.create(user=alice.user, title="Before")

    response = post_raw(
        web, f"/api/v1/chat/conversation/{conversation.pk}/rename", {"title": value}, method="patch", **alice.bearer
    )

    assert_clean_422(response, "title", phrase)
    conversation.refresh_from_db()
    assert conversation.title == "Before"


@pytest.mark.parametrize("segment", ["%00", "%F0%9F%98%80", "%D8%00", "%FF%FE", "%E2%80%AE"])
def test_odd_path_ids_are_a_422(web, alice, segment):
    response = web.get(f"/api/v1/chat/conversation/{segment}", headers=alice.bearer)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "conversation_id"]


@pytest.mark.parametrize("value", ["%00", "%F0%9F%98%80", "%FF", "1%00"])
def test_odd_query_values_are_a_422(web, alice, value):
    response = web.get(f"/api/v1/chat/history?limit={value}", headers=alice.bearer)

    assert response.status_code == 422


def test_invalid_utf8_in_a_body_is_a_422(web):
    response = web.post(LOGIN, b'{"email": "a@b.io", "password": "\xff\xfe"}', content_type="application/json")

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "JSON decode error"


# --- every string input is a StrictCharField --------------------------------------------------------


def _char_fields(serializer: serializers.Serializer, prefix: str = ""):
    for name, field in serializer.fields.items():
        child = field.child if isinstance(field, serializers.ListSerializer) else field
        if isinstance(child, serializers.Serializer):
            yield from _char_fields(child, f"{prefix}{name}.")
        elif isinstance(field, serializers.CharField):
            yield f"{prefix}{name}", field


def _input_serializers(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _input_serializers(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and hasattr(getattr(pattern.callback, "cls", None), "InputSerializer"):
            yield prefix + str(pattern.pattern), pattern.callback.cls.InputSerializer


def test_every_string_input_is_a_strict_char_field():
    checked = []
    for route, serializer in _input_serializers(get_resolver().url_patterns):
        for name, field in _char_fields(serializer()):
            assert isinstance(field, StrictCharField), f"{route}: {name}"
            checked.append(name)

    assert {"email", "password", "message", "title", "messages.parts.text"} <= set(checked)
