"""Edge cases found in review: long context, oversized AI-SDK text, huge offsets, odd ids."""

import json
import uuid

import pytest

from conversations.models import Conversation, Message
from conversations.selectors import CONTEXT_MIN_MESSAGES, conversation_context

pytestmark = pytest.mark.django_db

STREAM = "/api/v1/chat/stream"


def test_one_long_reply_does_not_wipe_the_context(alice):
    conversation = Conversation.objects.create(user=alice.user)
    for index in range(12):
        Message.objects.create(conversation=conversation, role="user", content=f"question {index}")
        content = "x" * 40_000 if index == 11 else f"answer {index}"
        Message.objects.create(conversation=conversation, role="assistant", content=content)
    last = Message.objects.create(conversation=conversation, role="user", content="and now?")

    context = conversation_context(
        conversation_id=conversation.pk, before_id=last.pk, max_messages=20, max_chars=32_000
    )

    assert len(context) >= CONTEXT_MIN_MESSAGES
    assert context[-1][0] == "assistant"
    assert context[-1][1] == "x" * 32_000  # cut to the budget, not dropped
    assert context[-2] == ("user", "question 11")


def test_ai_sdk_text_over_the_message_cap_is_422(web, alice):
    parts = [{"type": "text", "text": "y" * 9_000} for _ in range(3)]
    payload = {"messages": [{"id": "1", "role": "user", "parts": parts}]}

    response = web.post(STREAM, json.dumps(payload), content_type="application/json", headers=alice.bearer)

    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["field"] == "messages"
    assert not Message.objects.exists()


def test_a_very_long_conversation_id_is_not_found(web, alice):
    payload = {"message": "hi", "conversation_id": "z" * 500}

    response = web.post(STREAM, json.dumps(payload), content_type="application/json", headers=alice.bearer)

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/chat/history", f"/api/v1/chat/conversation/{uuid.uuid4()}"])
def test_huge_offsets_are_422(web, alice, path):
    response = web.get(path, {"offset": 10**24}, headers=alice.bearer)

    assert response.status_code == 422


def test_the_stream_says_keep_alive(web, alice):
    response = web.post(STREAM, json.dumps({"message": "hi"}), content_type="application/json", headers=alice.bearer)

    assert response["Connection"] == "keep-alive"
