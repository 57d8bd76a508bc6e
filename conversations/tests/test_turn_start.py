"""The pre-stream write (services.turn_start): what it stores, and how few statements it costs,
since every chat request waits for it before its first byte. On PostgreSQL it is one call of the
function `conversations_turn_start`; elsewhere the ORM's `_write_ahead`, which the function must
match row for row."""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.exceptions import ConversationNotFound, TooManyStreams
from conversations.models import Conversation, Message, TurnStatus
from conversations.services import (
    _write_ahead,
    _write_ahead_in_one_statement,
    heartbeat_cutoff,
    turn_start,
)

pytestmark = pytest.mark.django_db
POSTGRESQL = connection.vendor == "postgresql"


def start(persona, conversation_id=None, text="Hello there"):
    return turn_start(user=persona.user, conversation_id=conversation_id, text=text, provider="openai", model="m")


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split()[0] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_a_first_turn_creates_the_conversation_in_one_statement_on_postgresql(alice):
    with CaptureQueriesContext(connection) as queries:
        turn = start(alice)

    if POSTGRESQL:
        assert statements(queries) == ["SELECT"]  # conversations_turn_start
    else:
        # Lock the user, count their streams, insert the conversation, then both messages at once.
        assert statements(queries) == ["SELECT", "SELECT", "INSERT", "INSERT"]

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

    with CaptureQueriesContext(connection) as queries:
        turn = start(alice, conversation_id=str(first.conversation_id), text="Second question")

    if POSTGRESQL:
        assert statements(queries) == ["SELECT", "SELECT"]  # the function, then the history

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


# The PostgreSQL function against the ORM's write-ahead, case by case: the same rows, the same
# answer. (Runs in the PostgreSQL pass of .ci/run; SQLite has no function.)


class Undo(Exception):
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome


@dataclass
class Case:
    """What is in the database before the turn, and which conversation the turn names."""

    name: str
    conversation: str | None = None  # None: a first turn; else "mine", "empty", "theirs", "unknown"
    streaming_elsewhere: int = 0
    stale_elsewhere: int = 0
    earlier_reply_streaming: bool = False
    stream_cap: int = 4


CASES = [
    Case("first turn"),
    Case("later turn", conversation="mine"),
    Case("later turn, earlier reply still streaming", conversation="mine", earlier_reply_streaming=True),
    Case("a conversation without messages or title gets one", conversation="empty"),
    Case("cap reached", streaming_elsewhere=4),
    Case("cap reached by a later turn", conversation="mine", streaming_elsewhere=4),
    Case(
        "streams in the turn's own conversation don't count",
        conversation="mine",
        earlier_reply_streaming=True,
        streaming_elsewhere=3,
    ),
    Case("replies with a stale heartbeat don't count", streaming_elsewhere=3, stale_elsewhere=5),
    Case("no cap", streaming_elsewhere=9, stream_cap=0),
    Case("someone else's conversation", conversation="theirs"),
    Case("unknown conversation", conversation="unknown"),
]


def arrange(case: Case, alice, bob, now) -> uuid.UUID | None:
    earlier = now - timedelta(hours=1)  # every timestamp fixed relative to `now`

    def conversation(owner, title: str | None = "Earlier") -> Conversation:
        return Conversation.objects.create(user=owner, title=title, created_at=earlier, updated_at=earlier)

    def reply(conversation: Conversation, status: str, updated_at) -> None:
        Message.objects.create(
            conversation=conversation, role="user", content="q", created_at=earlier, updated_at=earlier
        )
        Message.objects.create(
            conversation=conversation,
            role="assistant",
            content="a",
            status=status,
            created_at=earlier,
            updated_at=updated_at,
        )

    for _ in range(case.streaming_elsewhere):
        reply(conversation(alice.user), TurnStatus.STREAMING, now)
    for _ in range(case.stale_elsewhere):
        reply(conversation(alice.user), TurnStatus.STREAMING, heartbeat_cutoff(now) - timedelta(seconds=1))
    if case.conversation == "mine":
        mine = conversation(alice.user)
        reply(mine, TurnStatus.COMPLETE, now - timedelta(minutes=5))
        if case.earlier_reply_streaming:
            reply(mine, TurnStatus.STREAMING, now)
        return mine.pk
    if case.conversation == "empty":
        return conversation(alice.user, title=None).pk
    if case.conversation == "theirs":
        return conversation(bob.user).pk
    if case.conversation == "unknown":
        return uuid.uuid4()
    return None


def database_rows(alice, bob) -> list[tuple]:
    """Everything both users have, without the generated ids."""
    rows: list[tuple] = []
    for conversation in Conversation.objects.filter(user__in=[alice.user, bob.user]).order_by("created_at", "title"):
        rows.append(
            (
                conversation.user_id,
                conversation.title,
                conversation.created_at,
                conversation.updated_at,
                conversation.sentiment_state,
                conversation.status,
                conversation.provider,
                conversation.model,
            )
        )
        for message in conversation.messages.order_by("id"):
            rows.append(
                (
                    message.role,
                    message.content,
                    message.status,
                    message.sentiment_data,
                    message.model_info,
                    message.prompt_tokens,
                    message.completion_tokens,
                    message.created_at,
                    message.updated_at,
                )
            )
    return rows


def outcome(write, case: Case, alice, bob) -> Any:
    now = timezone.now()
    try:
        with transaction.atomic():
            existing_id = arrange(case, alice, bob, now)
            try:
                written = write(
                    user=alice.user,
                    existing_id=existing_id,
                    text="A question that is long enough to be cut short in the conversation's title",
                    provider="openai",
                    model="m",
                    now=now,
                    stream_cap=case.stream_cap,
                )
            except (TooManyStreams, ConversationNotFound) as exc:
                answer: Any = type(exc).__name__
            else:
                messages = Message.objects.filter(pk__in=[written.user_message_id, written.assistant_message_id])
                answer = (
                    written.conversation_id == existing_id,
                    sorted((m.pk == written.user_message_id, m.role, m.status) for m in messages),
                    written.earlier_turn_in_flight,
                )
            # Relative to `now`, which differs between the two runs.
            rows = [tuple(v - now if hasattr(v, "tzinfo") else v for v in row) for row in database_rows(alice, bob)]
            raise Undo((answer, rows))
    except Undo as undone:
        return undone.outcome


@pytest.mark.skipif(not POSTGRESQL, reason="the function exists on PostgreSQL only (its pass of .ci/run)")
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_postgresql_function_writes_what_the_orm_writes(case, alice, bob):
    expected = outcome(_write_ahead, case, alice, bob)

    assert outcome(_write_ahead_in_one_statement, case, alice, bob) == expected
