"""The pre-stream write (services.turn_start): what it stores, and how few statements it costs,
since every chat request waits for it before its first byte."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.exceptions import ConversationNotFound
from conversations.models import Conversation, Message, TurnStatus
from conversations.services import turn_start

pytestmark = pytest.mark.django_db


def start(persona, conversation_id=None, text="Hello there"):
    return turn_start(user=persona.user, conversation_id=conversation_id, text=text, provider="openai", model="m")


def test_a_first_turn_creates_the_conversation_in_four_statements(alice):
    with CaptureQueriesContext(connection) as queries:
        turn = start(alice)

    statements = [q["sql"].split()[0] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    # Lock the user, count their streams, insert the conversation, then both messages at once.
    assert statements == ["SELECT", "SELECT", "INSERT", "INSERT"]

    conversation = Conversation.objects.get(pk=turn.conversation_id)
    assert (conversation.title, conversation.status, conversation.provider, conversation.model) == (
        "Hello there",
        TurnStatus.STREAMING,
        "openai",
        "m",
    )
    user_message, reply = Message.objects.filter(conversation=conversation).order_by("created_at", "id")
    assert (user_message.pk, user_message.role, user_message.content) == (turn.user_message_id, "user", "Hello there")
    assert (reply.pk, reply.role, reply.status, reply.content) == (
        turn.assistant_message_id,
        "assistant",
        "streaming",
        "",
    )
    assert (turn.history, turn.earlier_turn_in_flight) == ([], False)


def test_a_later_turn_reads_the_history_and_keeps_the_title(alice):
    first = start(alice, text="First question")
    Message.objects.filter(pk=first.assistant_message_id).update(content="First answer", status=TurnStatus.COMPLETE)

    turn = start(alice, conversation_id=str(first.conversation_id), text="Second question")

    assert turn.conversation_id == first.conversation_id
    assert turn.history == [("user", "First question"), ("assistant", "First answer")]
    assert turn.earlier_turn_in_flight is False
    assert Conversation.objects.get(pk=first.conversation_id).title == "First question"


def test_a_turn_sent_while_the_previous_reply_streams_waits_for_it(alice):
    first = start(alice)

    assert start(alice, conversation_id=str(first.conversation_id)).earlier_turn_in_flight is True


@pytest.mark.parametrize("conversation_id", ["not-a-uuid", str(uuid.uuid4())])
def test_unknown_conversations_are_not_found_and_nothing_is_written(alice, conversation_id):
    with pytest.raises(ConversationNotFound):
        start(alice, conversation_id=conversation_id)

    assert not Message.objects.exists()


def test_someone_elses_conversation_is_not_found(alice, bob):
    theirs = start(alice)

    with pytest.raises(ConversationNotFound):
        start(bob, conversation_id=str(theirs.conversation_id))

    assert Message.objects.filter(conversation_id=theirs.conversation_id).count() == 2
