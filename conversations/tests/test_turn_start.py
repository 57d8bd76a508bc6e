"""The pre-stream write (services.turn_start): what it stores, and how few statements it costs,
since every chat request waits for it before its first byte. On PostgreSQL it is one call of the
function `conversations_turn_start`; elsewhere the ORM's `_write_ahead`, which the function must
match row for row."""

import functools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.exceptions import TokenRejected
from accounts.models import RevokedToken, User
from accounts.tokens import TokenClaims, token_claims, token_decode, token_issue
from conversations.exceptions import ConversationNotFound, TooManyStreams
from conversations.models import Conversation, Message, TurnStatus
from conversations.services import (
    TurnWrite,
    _write_ahead,
    _write_ahead_in_one_statement,
    heartbeat_cutoff,
    turn_start,
)

pytestmark = pytest.mark.django_db
POSTGRESQL = connection.vendor == "postgresql"


def claims_of(persona) -> TokenClaims:
    return token_claims(token_decode(persona.token))


def start(persona, conversation_id=None, text="Hello there"):
    return turn_start(
        claims=claims_of(persona), conversation_id=conversation_id, text=text, provider="openai", model="m"
    )


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split()[0] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_a_first_turn_is_checked_and_written_in_one_statement_on_postgresql(alice):
    with CaptureQueriesContext(connection) as queries:
        turn = start(alice)

    if POSTGRESQL:
        assert statements(queries) == ["SELECT"]  # conversations_turn_start, the token's session check included
    else:
        # Check the token's session, lock the user, count their streams, insert the conversation,
        # then both messages at once.
        assert statements(queries) == ["SELECT", "SELECT", "SELECT", "INSERT", "INSERT"]

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
        assert statements(queries) == ["SELECT"]  # the function, the history included

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
    conversation: str | None = None  # None: a first turn; else "mine", "untitled", "theirs", "unknown"
    streaming_elsewhere: int = 0  # alice's live replies in other conversations
    stale_elsewhere: int = 0  # ... streaming, but their heartbeat stopped
    finished_elsewhere: int = 0  # ... finished a moment ago (complete, fresh updated_at)
    bob_streaming: int = 0  # another user's live replies
    earlier_reply: str | None = None  # in the turn's conversation: None, "streaming", "stale" or "empty"
    untitled_with_messages: bool = False  # "untitled": it already has messages
    stream_cap: int = 4
    session: str = "lia"  # the token's session: a key of SESSIONS
    context_max_messages: int = 20


def _epoch(user: User, at: datetime) -> None:
    User.objects.filter(pk=user.pk).update(tokens_valid_after=at)
    user.refresh_from_db()


def _lia_token(user: User, now: datetime) -> TokenClaims:
    user.refresh_from_db()
    return token_claims(token_decode(token_issue(user=user).value))


def _fastapi_token(user: User, now: datetime, *, with_iat: bool = True) -> TokenClaims:
    return token_claims({"sub": str(user.pk), **({"iat": int(now.timestamp())} if with_iat else {})})


def _revoked(user: User, now: datetime) -> TokenClaims:
    claims = _lia_token(user, now)
    RevokedToken.objects.create(jti=claims.jti, user=user, expires_at=now + timedelta(hours=1))
    return claims


def _deactivated(user: User, now: datetime) -> TokenClaims:
    claims = _lia_token(user, now)
    User.objects.filter(pk=user.pk).update(is_active=False)
    return claims


def _password_changed_in_bulk(user: User, now: datetime) -> TokenClaims:
    claims = _lia_token(user, now)
    User.objects.filter(pk=user.pk).update(password=make_password("another password", hasher="md5"))
    return claims


def _ended(user: User, now: datetime, *, make: Callable[..., TokenClaims] = _lia_token) -> TokenClaims:
    claims = make(user, now - timedelta(seconds=5))
    _epoch(user, now)  # after the token's iat: logout of a jti-less token, end_sessions, deactivation
    return claims


def _issued_after_epoch(epoch: datetime) -> Callable[[User, datetime], TokenClaims]:
    def make(user: User, now: datetime) -> TokenClaims:
        _epoch(user, epoch)
        return _lia_token(user, now)

    return make


# How the token's session stands when the turn arrives: a function of (alice's user, now) that
# prepares the database and returns the token's claims. The fingerprint covers the password hash
# and tokens_valid_after in Python's isoformat, which the SQL function rebuilds: hence the epochs
# with and without microseconds.
SESSIONS: dict[str, Callable[[User, datetime], TokenClaims]] = {
    "lia": _lia_token,
    "epoch before the token, whole second": _issued_after_epoch(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    "epoch before the token, microseconds": _issued_after_epoch(datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)),
    "epoch in the token's second": lambda user, now: _issued_after_epoch(now.replace(microsecond=999999))(user, now),
    "revoked": _revoked,
    "deactivated": _deactivated,
    "password changed in bulk": _password_changed_in_bulk,
    "ended": _ended,
    "fastapi": _fastapi_token,
    "fastapi, ended": functools.partial(_ended, make=_fastapi_token),
    "fastapi without iat, with an epoch": lambda user, now: (
        _epoch(user, now - timedelta(hours=1)),
        _fastapi_token(user, now, with_iat=False),
    )[1],
    "fastapi without iat": functools.partial(_fastapi_token, with_iat=False),
    "lia without sfp": lambda user, now: token_claims({**vars_of(_lia_token(user, now)), "sfp": None}),
    "lia without jti": lambda user, now: token_claims({**vars_of(_lia_token(user, now)), "jti": None}),
    "user gone": lambda user, now: token_claims({"sub": "987654321", "iat": int(now.timestamp())}),
}


def vars_of(claims: TokenClaims) -> dict[str, Any]:
    """A Lia token's payload with these claims."""
    return {
        "sub": str(claims.user_id),
        "jti": claims.jti,
        "iat": claims.issued_at,
        "sfp": claims.fingerprint,
        "token_type": "access",
    }


# The sessions above that still belong to their user.
LIVE_SESSIONS = {
    "lia",
    "epoch before the token, whole second",
    "epoch before the token, microseconds",
    "epoch in the token's second",
    "fastapi",
    "fastapi without iat",
}


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_a_turn_starts_only_in_a_session_its_user_still_accepts(alice, session):
    claims = SESSIONS[session](alice.user, timezone.now())

    def begin():
        return turn_start(claims=claims, conversation_id=None, text="Hello there", provider="openai", model="m")

    if session in LIVE_SESSIONS:
        assert Message.objects.filter(conversation_id=begin().conversation_id).count() == 2
    else:
        with pytest.raises(TokenRejected, match="User not found" if session == "user gone" else "Invalid or expired"):
            begin()
        assert not Message.objects.exists()


CASES = [
    Case("first turn"),
    Case("later turn", conversation="mine"),
    Case("later turn, earlier reply still streaming", conversation="mine", earlier_reply="streaming"),
    Case("later turn, earlier reply's heartbeat stopped", conversation="mine", earlier_reply="stale"),
    Case("later turn, its history cut to the newest message", conversation="mine", context_max_messages=1),
    Case("later turn, an empty reply in its history", conversation="mine", earlier_reply="empty"),
    Case("a conversation without messages or title gets one", conversation="untitled"),
    Case("an untitled conversation with messages keeps no title", conversation="untitled", untitled_with_messages=True),
    Case("cap reached", streaming_elsewhere=4),
    Case("cap reached by a later turn", conversation="mine", streaming_elsewhere=4),
    Case(
        "streams in the turn's own conversation don't count",
        conversation="mine",
        earlier_reply="streaming",
        streaming_elsewhere=3,
    ),
    Case("replies with a stale heartbeat don't count", streaming_elsewhere=3, stale_elsewhere=5),
    Case("finished replies don't count", streaming_elsewhere=3, finished_elsewhere=5),
    Case("another user's streams don't count", streaming_elsewhere=3, bob_streaming=5),
    Case("no cap", streaming_elsewhere=9, stream_cap=0),
    Case("a negative cap is no cap", streaming_elsewhere=9, stream_cap=-1),
    Case("someone else's conversation", conversation="theirs"),
    Case("unknown conversation", conversation="unknown"),
    *(Case(f"session: {name}", session=name) for name in sorted(SESSIONS) if name != "lia"),
    Case("an ended session before the cap", session="ended", streaming_elsewhere=4),
    Case("an ended session before someone else's conversation", session="ended", conversation="theirs"),
    Case("an ended session without a cap", session="ended", stream_cap=0),
    Case("a live session without a cap", session="epoch before the token, whole second", stream_cap=0),
]


def arrange(case: Case, alice, bob, now) -> uuid.UUID | None:
    earlier = now - timedelta(hours=1)  # every timestamp fixed relative to `now`
    stale = heartbeat_cutoff(now) - timedelta(seconds=1)

    def conversation(owner, title: str | None = "Earlier") -> Conversation:
        return Conversation.objects.create(user=owner, title=title, created_at=earlier, updated_at=earlier)

    def reply(conversation: Conversation, status: str, updated_at, content: str = "a") -> None:
        Message.objects.create(
            conversation=conversation, role="user", content="q", created_at=earlier, updated_at=earlier
        )
        Message.objects.create(
            conversation=conversation,
            role="assistant",
            content=content,
            status=status,
            created_at=earlier,
            updated_at=updated_at,
        )

    for status, updated_at, count in [
        (TurnStatus.STREAMING, now, case.streaming_elsewhere),
        (TurnStatus.STREAMING, stale, case.stale_elsewhere),
        (TurnStatus.COMPLETE, now, case.finished_elsewhere),
    ]:
        for _ in range(count):
            reply(conversation(alice.user), status, updated_at)
    for _ in range(case.bob_streaming):
        reply(conversation(bob.user), TurnStatus.STREAMING, now)
    if case.conversation == "mine":
        mine = conversation(alice.user)
        reply(mine, TurnStatus.COMPLETE, now - timedelta(minutes=5))
        if case.earlier_reply == "empty":
            reply(mine, TurnStatus.INTERRUPTED, now - timedelta(minutes=4), content="")
        elif case.earlier_reply:
            reply(mine, TurnStatus.STREAMING, now if case.earlier_reply == "streaming" else stale)
        return mine.pk
    if case.conversation == "untitled":
        untitled = conversation(alice.user, title=None)
        if case.untitled_with_messages:
            reply(untitled, TurnStatus.COMPLETE, earlier)
        return untitled.pk
    if case.conversation == "theirs":
        return conversation(bob.user).pk
    if case.conversation == "unknown":
        return uuid.uuid4()
    return None


def row(instance, now) -> tuple:
    """Every stored field but the generated ids, timestamps relative to `now`."""
    values = []
    for field in instance._meta.concrete_fields:
        if field.primary_key or field.name == "conversation":
            continue
        value = getattr(instance, field.attname)
        values.append((field.name, value - now if hasattr(value, "tzinfo") else value))
    return tuple(values)


def database_rows(alice, bob, now) -> list[tuple]:
    """Everything both users have: each conversation with its messages, in a stable order."""
    return sorted(
        (row(conversation, now), tuple(row(message, now) for message in conversation.messages.order_by("id")))
        for conversation in Conversation.objects.filter(user__in=[alice.user, bob.user])
    )


def outcome(write, case: Case, alice, bob) -> Any:
    now = timezone.now()
    try:
        with transaction.atomic():
            existing_id = arrange(case, alice, bob, now)
            claims = SESSIONS[case.session](alice.user, now)
            try:
                written = write(
                    TurnWrite(
                        claims=claims,
                        existing_id=existing_id,
                        text="A question that is long enough to be cut short in the conversation's title",
                        provider="openai",
                        model="m",
                        now=now,
                        stream_cap=case.stream_cap,
                        context_max_messages=case.context_max_messages,
                    )
                )
            except (TooManyStreams, ConversationNotFound, TokenRejected) as exc:
                answer: Any = (type(exc).__name__, str(exc))
            else:
                messages = Message.objects.filter(pk__in=[written.user_message_id, written.assistant_message_id])
                assert {m.conversation_id for m in messages} == {written.conversation_id}
                answer = (
                    written.conversation_id == existing_id,
                    sorted((m.pk == written.user_message_id, m.role, m.status) for m in messages),
                    written.earlier_turn_in_flight,
                    written.recent_messages,
                )
            raise Undo((answer, database_rows(alice, bob, now)))
    except Undo as undone:
        return undone.outcome


@pytest.mark.skipif(not POSTGRESQL, reason="the function exists on PostgreSQL only (its pass of .ci/run)")
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_postgresql_function_writes_what_the_orm_writes(case, alice, bob):
    expected = outcome(_write_ahead, case, alice, bob)

    assert outcome(_write_ahead_in_one_statement, case, alice, bob) == expected


@pytest.mark.skipif(not POSTGRESQL, reason="the function exists on PostgreSQL only (its pass of .ci/run)")
def test_without_the_function_the_orm_writes_the_turn(alice, caplog):
    """New code deployed before `migrate`: turns still start (and say what is missing)."""
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute(
            "DROP FUNCTION conversations_turn_start(bigint, uuid, boolean, varchar, text, varchar, varchar, jsonb,"
            " timestamptz, timestamptz, integer, varchar, double precision, varchar, bytea, bytea, integer)"
        )

    turn = start(alice)

    assert Message.objects.filter(conversation_id=turn.conversation_id).count() == 2
    assert "chat.turn.write_ahead_function_missing" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_simultaneous_turns_of_one_user_never_pass_the_cap(alice, settings):
    """Six first turns at once, each on its own connection, against a cap of two: two start."""
    settings.CHAT_MAX_CONCURRENT_STREAMS = 2
    ready = threading.Barrier(6)

    def one() -> str:
        ready.wait(timeout=10)
        try:
            start(alice)
            return "started"
        except TooManyStreams:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: one(), range(6)))

    assert sorted(results) == ["refused"] * 4 + ["started"] * 2
    assert Message.objects.filter(status=TurnStatus.STREAMING).count() == 2


WRITERS = [
    pytest.param(_write_ahead, id="orm"),
    pytest.param(
        _write_ahead_in_one_statement,
        id="postgresql",
        marks=pytest.mark.skipif(not POSTGRESQL, reason="the function exists on PostgreSQL only"),
    ),
]


@pytest.mark.parametrize("write", WRITERS)
def test_turns_sent_together_are_stored_in_the_order_they_are_served(alice, write):
    """Two turns sent together into one conversation: each takes its time (`now`) before the
    conversation's lock, so the one that locks first may have the later time. It is served
    first (the other waits for its reply, by message id), so it must come first in the
    transcript too (CONTRACT §9.2: created_at, then id). Found by an audit: three turns sent at
    once under `manage.py serve` were listed out of the order they were answered in."""
    first = start(alice, text="Hello")
    Message.objects.filter(pk=first.assistant_message_id).update(status=TurnStatus.COMPLETE, content="Hi")
    later, earlier = timezone.now() + timedelta(milliseconds=5), timezone.now()

    def turn(text: str, now: datetime) -> Any:
        return write(
            TurnWrite(
                claims=claims_of(alice),
                existing_id=first.conversation_id,
                text=text,
                provider="openai",
                model="m",
                now=now,
                stream_cap=4,
                context_max_messages=20,
            )
        )

    served_first = turn("My name is Ada", later)
    served_second = turn("What is my name?", earlier)

    assert served_second.earlier_turn_in_flight is True  # it waits for the first one's reply
    transcript = Message.objects.filter(conversation_id=first.conversation_id).order_by("created_at", "id")
    assert [m.pk for m in transcript] == [
        first.user_message_id,
        first.assistant_message_id,
        served_first.user_message_id,
        served_first.assistant_message_id,
        served_second.user_message_id,
        served_second.assistant_message_id,
    ]
    # and the conversation is as recent as its latest message (found by a review: it kept the
    # turn's own, earlier, time; the history list is sorted by it)
    conversation = Conversation.objects.get(pk=first.conversation_id)
    assert conversation.updated_at == transcript.last().created_at
