"""Regressions for what schemathesis found (lia/tests/test_openapi.py): each was a 500, or an
answer the schema (and the contract) didn't allow."""

import json

import pytest

from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

HISTORY = "/api/v1/chat/history"
STREAM = "/api/v1/chat/stream"


@pytest.fixture
def conversation(alice) -> Conversation:
    conversation = Conversation.objects.create(user=alice.user, title="A chat")
    Message.objects.create(conversation=conversation, role="user", content="Hello")
    return conversation


@pytest.mark.parametrize("offset", [str(2**63), "28553315628163436544", str(10**40)])
def test_an_offset_past_64_bits_is_a_422_not_a_500(web, alice, conversation, offset):
    for path in (HISTORY, f"/api/v1/chat/conversation/{conversation.pk}"):
        response = web.get(f"{path}?offset={offset}", headers=alice.bearer)

        assert response.status_code == 422, path
        assert response.json()["detail"][0]["loc"] == ["query", "offset"]


def test_the_largest_offset_is_an_empty_page(web, alice, conversation):
    response = web.get(f"/api/v1/chat/conversation/{conversation.pk}?offset={2**63 - 1}", headers=alice.bearer)

    assert response.status_code == 200
    assert response.json()["messages"] == []
    assert response.json()["has_more"] is False


@pytest.mark.parametrize("query", ["limit=", "offset=", "limit=&offset="])
def test_an_empty_query_value_is_a_422_not_the_default(web, alice, conversation, query):
    for path in (HISTORY, f"/api/v1/chat/conversation/{conversation.pk}"):
        response = web.get(f"{path}?{query}", headers=alice.bearer)

        assert response.status_code == 422, path
        assert response.json()["detail"][0]["loc"][0] == "query"


def test_query_integers_are_still_read_from_text(web, alice, conversation):
    response = web.get(f"{HISTORY}?limit=1&offset=0", headers=alice.bearer)

    assert response.status_code == 200
    assert len(response.json()) == 1


@pytest.mark.parametrize(
    "model_settings",
    [{"temperature": "0.7"}, {"max_tokens": "100"}, {"top_p": "1"}, {"presence_penalty": "0"}],
)
def test_numbers_sent_as_strings_are_wrongly_typed(web, alice, model_settings):
    body = {"message": "Hi", "provider": "offline", "model_settings": model_settings}

    response = web.post(STREAM, json.dumps(body), content_type="application/json", headers=alice.bearer)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "model_settings", next(iter(model_settings))]


def test_ai_sdk_items_may_have_empty_strings(web, alice):
    """CONTRACT §7.4 asks for strings, not non-empty ones (the FastAPI backend accepted "")."""
    body = {
        "messages": [
            {"id": "", "role": "", "parts": [{"type": "", "text": None}]},
            {"id": "2", "role": "user", "parts": [{"type": "text", "text": "Hi"}]},
        ],
        "provider": "offline",
    }

    response = web.post(STREAM, json.dumps(body), content_type="application/json", headers=alice.bearer)

    assert response.status_code == 200
    assert Message.objects.filter(role="user").get().content == "Hi"  # stored before the first byte


def test_ai_sdk_roles_are_compared_as_sent(web, alice):
    body = {"messages": [{"id": "1", "role": " user", "parts": [{"type": "text", "text": "Hi"}]}]}

    response = web.post(STREAM, json.dumps(body), content_type="application/json", headers=alice.bearer)

    assert response.status_code == 400
    assert response.json() == {"error": {"message": "No message content provided"}}
