"""The pre-stream write (services.turn_start): what it stores, and how few statements it costs,
since every chat request waits for it before its first byte."""

import uuid

import pytest
from django.db import OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from accounts.tokens import token_decode, token_user
from conversations.exceptions import ConversationNotFound
from conversations.models import Conversation, Message, TurnStatus
from conversations.services import turn_start
from conversations.tests.conftest import body

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


def test_in_the_chat_views_transaction_a_first_turn_is_three_statements(alice):
    """The view reads the token's user with its row lock (accounts.tokens.token_user(lock=True)),
    so turn_start doesn't lock it again, nor open a savepoint of its own."""
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        turn_start(user=alice.user, conversation_id=None, text="Hi", provider="openai", model="m", user_locked=True)

    # Count the user's streams, insert the conversation, then both messages at once.
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT", "INSERT", "INSERT"]


@pytest.mark.django_db(transaction=True)
def test_a_user_locked_turn_start_outside_a_transaction_is_refused(alice):
    with pytest.raises(TransactionManagementError):
        turn_start(user=alice.user, conversation_id=None, text="Hi", provider="openai", model="m", user_locked=True)

    assert not Message.objects.exists()


def test_the_token_user_is_read_with_its_row_lock_when_asked(alice):
    payload = token_decode(alice.token)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert token_user(payload, lock=True) == alice.user

    (query,) = queries.captured_queries
    assert ("FOR UPDATE" in query["sql"]) is connection.features.has_select_for_update


def test_a_chat_request_reads_the_user_once(alice, web, scripted):
    """Authentication and the write-ahead share one transaction and one read of the user."""
    scripted.reply("Hi")
    with CaptureQueriesContext(connection) as queries:
        response = web.post("/api/v1/chat/stream", body(), content_type="application/json", headers=alice.bearer)
    assert response.status_code == 200

    user_reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "accounts_user"')]
    assert len(user_reads) == 1


@pytest.mark.django_db(transaction=True)
def test_a_chat_request_whose_commit_fails_is_a_clean_503_and_stores_nothing(alice, web, scripted, monkeypatch):
    scripted.reply("Hi")

    def broken_commit() -> None:
        raise OperationalError("the server closed the connection unexpectedly")

    monkeypatch.setattr(connection, "commit", broken_commit)
    response = web.post("/api/v1/chat/stream", body(), content_type="application/json", headers=alice.bearer)
    monkeypatch.undo()

    assert response.status_code == 503
    assert response.json()["error"]["message"]
    assert response["Retry-After"]
    assert not Message.objects.exists()
