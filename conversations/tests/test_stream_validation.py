"""What the stream refuses before the first byte, and in which order (CONTRACT §7.2-7.7)."""

import json
import uuid

import pytest
from django.db import IntegrityError, OperationalError
from rest_framework.fields import empty

from accounts.models import User
from conversations import apis
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

STREAM = "/api/v1/chat/stream"


def post(client, persona, payload, **headers):
    return client.post(
        STREAM, json.dumps(payload), content_type="application/json", headers={**persona.bearer, **headers}
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "x" * 10_001}, "message"),
        ({"message": 42}, "message"),
        ({"message": "hi", "provider": "anthropic"}, "provider"),
        ({"message": "hi", "provider": "Gemini"}, "provider"),
        ({"message": "hi", "sentiment_method": "vibes"}, "sentiment_method"),
        ({"message": "hi", "model_settings": {"temperature": 2.5}}, "model_settings.temperature"),
        ({"message": "hi", "model_settings": {"temperature": True}}, "model_settings.temperature"),
        ({"message": "hi", "model_settings": {"max_tokens": 0}}, "model_settings.max_tokens"),
        ({"message": "hi", "model_settings": {"max_tokens": 32_001}}, "model_settings.max_tokens"),
        ({"message": "hi", "model_settings": {"top_p": 1.5}}, "model_settings.top_p"),
        ({"message": "hi", "model_settings": {"frequency_penalty": -3}}, "model_settings.frequency_penalty"),
        ({"message": "hi", "model_settings": {"presence_penalty": "lots"}}, "model_settings.presence_penalty"),
        ({"message": "hi", "model_settings": [1]}, "model_settings"),
        ({"messages": [{"role": "user", "parts": []}]}, "messages.0.id"),
        ({"messages": [{"id": "1", "role": "user", "parts": [{"type": "text", "text": "x" * 10_001}]}]}, None),
        ({"messages": [{"id": str(i), "role": "user", "parts": []} for i in range(51)]}, "messages"),
        # Parts each under the cap whose text, joined, is over it.
        ({"messages": [{"id": "1", "role": "user", "parts": [{"type": "text", "text": "y" * 9_000}] * 3}]}, "messages"),
        ({"message": "hi", "id": 7}, "id"),  # the AI SDK's fields are strings (CONTRACT §7.2)
        ({"message": "hi", "trigger": {"kind": "submit"}}, "trigger"),
    ],
)
def test_bad_bodies_are_422_and_store_nothing(web, alice, payload, field):
    response = post(web, alice, payload)

    assert response.status_code == 422
    body = response.json()
    assert body["error"]["message"]
    if field:
        assert body["error"]["details"]["errors"][0]["field"] == field
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"messages": []},
        {"messages": [{"id": "1", "role": "assistant", "parts": [{"type": "text", "text": "hi"}]}]},
        {"messages": [{"id": "1", "role": "user", "parts": [{"type": "file", "url": "x"}]}]},
        {"messages": [{"id": "1", "role": "user", "parts": [{"type": "text", "text": ""}]}]},
    ],
)
def test_no_user_text_is_400(web, alice, payload):
    response = post(web, alice, payload)

    assert response.status_code == 400
    assert response.json() == {"error": {"message": "No message content provided"}}
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    "conversation_id",
    ["not-a-uuid", str(uuid.uuid4()), " ", "\t", "\n ", "z" * 500],
    ids=["malformed", "unknown", "space", "tab", "blank-lines", "very-long"],
)
def test_unknown_or_malformed_conversation_is_404_before_streaming(web, alice, conversation_id):
    """CONTRACT §7.6: only absent, null and "" start a new conversation; whitespace is no id."""
    response = post(web, alice, {"message": "hi", "conversation_id": conversation_id})

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Conversation not found"}}
    assert not Message.objects.exists()


def test_checks_run_in_the_contract_order(web, alice, settings):
    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 1
    unknown = str(uuid.uuid4())
    assert post(web, alice, {"message": "hi", "conversation_id": unknown}).status_code == 404  # uses the slot

    assert web.post(STREAM, "{}", content_type="application/json").status_code == 401
    assert post(web, alice, {"message": ""}).status_code == 422  # before the limit
    limited = post(web, alice, {"conversation_id": unknown})  # no text, unknown id: the limit wins
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert limited.json()["error"]["details"]["retry_after"] == int(limited["Retry-After"])


def test_chat_limit_is_per_user(web, alice, bob, settings):
    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 2
    for _ in range(2):
        post(web, alice, {"conversation_id": str(uuid.uuid4()), "message": "x"})

    assert post(web, alice, {"message": "x", "conversation_id": str(uuid.uuid4())}).status_code == 429
    assert post(web, bob, {"message": "x", "conversation_id": str(uuid.uuid4())}).status_code == 404


def test_unknown_fields_and_sdk_fields_are_ignored(web, alice):
    response = post(web, alice, {"conversation_id": "", "id": "x", "trigger": "t", "role": "system", "user_id": 9})

    assert response.status_code == 400  # got as far as "no text": nothing above was refused
    assert post(web, alice, {"id": None, "trigger": None}).status_code == 400


def test_event_stream_accept_header_is_not_refused(web, alice):
    response = post(web, alice, {"message": ""}, Accept="text/event-stream")

    assert response.status_code == 422  # validated, not 406


def database_down(**kwargs):
    raise OperationalError("the server closed the connection unexpectedly")


def test_a_failed_write_ahead_is_503_before_any_provider_call(web, alice, scripted, monkeypatch):
    """RELIABILITY 18: when the user's message can't be stored, nothing streams and the
    provider is never asked."""

    monkeypatch.setattr(apis, "turn_start", database_down)

    response = post(web, alice, {"message": "hi", "provider": "scripted", "model": "m"})

    assert response.status_code == 503
    unavailable = "The service is temporarily unavailable. Please try again shortly."
    assert response.json() == {"error": {"message": unavailable}}
    assert response["Retry-After"] == "5"
    assert scripted.calls == []
    assert not Message.objects.exists()


def test_a_failed_write_ahead_answers_at_once(web, alice, scripted, monkeypatch):
    """The session isn't checked again after a database error: with the database hung, that
    would wait out a second pool timeout before the same 503."""
    checks = []
    monkeypatch.setattr(apis, "turn_start", database_down)
    monkeypatch.setattr(apis, "session_ended", lambda claims: checks.append(claims))

    assert post(web, alice, {"message": "hi", "provider": "scripted", "model": "m"}).status_code == 503
    assert checks == []


def test_a_user_deleted_during_the_write_ahead_is_401_not_500(web, alice, scripted, monkeypatch):
    """Without a stream cap the user's row isn't locked: deleted between the session check and
    the insert, the write fails on its foreign key. That is the ended session's 401."""

    def deleted_meanwhile(**kwargs):
        User.objects.filter(pk=alice.user.pk).delete()
        raise IntegrityError("insert or update violates foreign key constraint")

    monkeypatch.setattr(apis, "turn_start", deleted_meanwhile)

    response = post(web, alice, {"message": "hi", "provider": "scripted", "model": "m"})

    assert response.status_code == 401
    assert response.json() == {"error": {"message": "User not found"}}


PARTS = [
    {"type": "text", "text": "Hello"},
    {"type": "text", "text": None},
    {"type": "text"},
    {"type": "", "text": ""},
    {"type": "reasoning", "text": "héllo 👋", "state": "done"},  # other keys: dropped
    {"type": "text", "text": "x" * 10_000},
    {"type": "text", "text": "x" * 10_001},
    {"type": "text", "text": 5},
    {"type": "text", "text": True},
    {"type": "text", "text": ["a"]},
    {"type": None, "text": "a"},
    {"text": "a"},
    {"type": 3},
    {"type": "text", "text": "a\x00b"},
    {"type": "text\x00", "text": "a"},
    {"type": "text", "text": "a\ud800b"},
    {"type": "\udfff", "text": "a"},
    "text",
    None,
    ["type", "text"],
]


@pytest.mark.parametrize("part", PARTS, ids=repr)
def test_a_part_checked_in_plain_python_is_as_the_serializer_checks_it(part):
    """The parts of `messages[]` skip DRF's serializer when they are plainly valid (a 1 MB body of
    80,000 parts held a worker's CPU for 0.7 s before the rate limit could count it; now ~0.06 s).
    The answer, valid data or errors, is the serializer's own either way."""
    from rest_framework import serializers

    def validate(many: serializers.ListSerializer) -> object:
        try:
            return many.run_validation([{"type": "text", "text": "ok"}, part])
        except serializers.ValidationError as exc:
            return exc.detail

    plain = apis.MessagePartSerializer(many=True)
    drf = serializers.ListSerializer(child=apis.MessagePartSerializer())

    assert type(plain) is apis.MessagePartListSerializer
    assert validate(plain) == validate(drf)


def test_plainly_valid_parts_skip_the_serializer(web, alice, monkeypatch):
    checked = []
    through_serializer = apis.MessagePartSerializer.run_validation

    def counting(self, data=empty):
        checked.append(data)
        return through_serializer(self, data)

    monkeypatch.setattr(apis.MessagePartSerializer, "run_validation", counting)
    parts = [{"type": "text", "text": "Hi"}] + [{"type": "step-start"}] * 1_000 + [{"type": "text", "text": 5}]

    refused = post(web, alice, {"messages": [{"id": "1", "role": "user", "parts": parts}]})
    valid = apis.ChatStreamApi.InputSerializer(data={"messages": [{"id": "1", "role": "user", "parts": parts[:-1]}]})

    assert refused.status_code == 422
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "messages", 0, "parts", 1001, "text"]]
    assert valid.is_valid()
    assert apis.message_text(valid.validated_data) == "Hi"
    assert checked == [{"type": "text", "text": 5}]  # the one part that isn't plainly valid
