"""The reads behind the chat (conversations/selectors.py) that no endpoint test pins down alone."""

import pytest

from conversations.models import Conversation, Message
from conversations.selectors import CONTEXT_MIN_MESSAGES, conversation_context

pytestmark = pytest.mark.django_db


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
