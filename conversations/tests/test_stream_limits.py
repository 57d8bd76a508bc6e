"""Per-user stream cap, checkpoints, the sweep of orphaned replies, and durable saves."""

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.utils import timezone

from conversations import services, streaming
from conversations.models import Conversation, Message, TurnStatus
from conversations.services import TurnResult, streaming_messages_sweep
from conversations.tests.conftest import body, open_stream, parse_events, read_stream, read_until, wait_for_status
from llm import ChatOptions

pytestmark = pytest.mark.django_db(transaction=True)


async def slow_streams(alice, count: int) -> list:
    communicators = []
    for index in range(count):
        communicator = await open_stream(alice.token, body(f"stream {index}"))
        await read_until(communicator, 1)
        communicators.append(communicator)
    return communicators


async def close_all(communicators: list) -> None:
    for communicator in communicators:
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(timeout=5)


async def test_a_user_gets_at_most_k_simultaneous_streams(async_web, alice, bob, scripted, settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 2
    scripted.reply(*[f"w{i} " for i in range(40)], delay=0.05)
    open_ones = await slow_streams(alice, 2)

    refused, _ = await read_stream(async_web, alice, body("one more"))
    others, _ = await read_stream(async_web, bob, body("bob is not affected"))

    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"
    assert "Too many replies are streaming at once (at most 2)" in refused.json()["error"]["message"]
    assert others.status_code == 200
    await close_all(open_ones)


async def test_an_aborted_stream_frees_its_slot_at_once(async_web, alice, scripted, settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 2
    scripted.reply(*[f"w{i} " for i in range(40)], delay=0.05)
    first, second = await slow_streams(alice, 2)

    await close_all([first])
    scripted.reply("quick")
    response, _ = await read_stream(async_web, alice, body("after the abort"))

    assert response.status_code == 200
    await close_all([second])


async def test_a_new_turn_in_a_conversation_with_one_in_flight_is_never_refused(async_web, alice, scripted, settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 1
    scripted.reply(*[f"w{i} " for i in range(10)], delay=0.05)
    [communicator] = await slow_streams(alice, 1)
    conversation_id = str((await sync_to_async(Conversation.objects.get)()).pk)

    scripted.reply("regenerated")
    resend = asyncio.create_task(read_stream(async_web, alice, body("again", conversation_id=conversation_id)))
    await close_all([communicator])  # the web client aborts, then resends
    response, _ = await resend

    assert response.status_code == 200


async def read_to_end(communicator) -> list:
    received = b""
    while True:
        message = await communicator.receive_output(timeout=5)
        received += message.get("body", b"")
        if not message.get("more_body", False):
            return parse_events(received)


async def test_a_turn_whose_client_never_aborts_is_superseded_by_the_next_one(alice, scripted, stream, settings):
    """CONTRACT §7.15: a second request for a conversation with a turn in flight is never
    refused, and Lia serialises or supersedes the earlier turn. One whose client never aborts is
    superseded once the new turn has waited for it: it stops at its next checkpoint, with an
    `error`, and keeps what it had. (It streamed on beside the new one: a client could so hold
    any number of provider streams past the per-user cap, found by an audit.)"""
    settings.CHAT_MAX_CONCURRENT_STREAMS = 1
    settings.CHAT_TURN_WAIT_SECONDS = 0.3
    settings.CHAT_CHECKPOINT_SECONDS = 0.1
    words = [f"w{i} " for i in range(300)]
    scripted.reply(*words, delay=0.02)
    first = await open_stream(alice.token, body("first question"))
    seen = await read_until(first, 2)
    conversation_id = seen[0][2]["conversation_id"]

    scripted.reply("second ", "answer")
    response, second = await stream(alice, body("second question", conversation_id=conversation_id))
    first_events = seen + await read_to_end(first)
    await first.wait(timeout=5)

    assert response.status_code == 200
    assert [name for _, name, _ in second][-2:] == ["sentiment", "done"]
    assert first_events[-1][1:] == ("error", {"message": streaming.SUPERSEDED_ERROR})
    shown = "".join(data["content"] for _, name, data in first_events if name == "chunk")
    messages = Message.objects.filter(conversation_id=conversation_id).order_by("id")
    transcript = await sync_to_async(list)(messages.values_list("role", "status", "content"))
    assert [(role, status) for role, status, _ in transcript] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert transcript[1][2] == shown  # what its client saw, no more, no less
    assert (await sync_to_async(Conversation.objects.get)(pk=conversation_id)).status == "complete"
    assert "".join(words).startswith(shown)
    assert len(shown) < len("".join(words))
    assert len(scripted.calls) == 2


async def test_of_turns_sent_together_into_one_conversation_only_the_latest_streams(alice, scripted, settings):
    settings.CHAT_MAX_CONCURRENT_STREAMS = 1
    settings.CHAT_TURN_WAIT_SECONDS = 0.3
    settings.CHAT_CHECKPOINT_SECONDS = 0.1
    scripted.reply(*[f"w{i} " for i in range(300)], delay=0.02)
    first = await open_stream(alice.token, body("first"))
    conversation_id = (await read_until(first, 1))[0][2]["conversation_id"]

    resends = [await open_stream(alice.token, body(f"again {n}", conversation_id=conversation_id)) for n in range(3)]
    endings = [(await read_to_end(communicator))[-1] for communicator in [first, *resends]]

    superseded = ("error", {"message": streaming.SUPERSEDED_ERROR})
    assert [ending[1:] for ending in endings[:3]] == [superseded] * 3
    assert endings[3][1] == "done"
    replies = Message.objects.filter(conversation_id=conversation_id, role="assistant").order_by("id")
    stored = await sync_to_async(list)(replies.values_list("status", "content"))
    assert [status for status, _ in stored] == ["interrupted", "interrupted", "interrupted", "complete"]
    assert (await sync_to_async(Conversation.objects.get)(pk=conversation_id)).status == "complete"
    # Resends that waited together may each have started streaming; each stopped at its next
    # checkpoint, long before the reply's end.
    whole = stored[-1][1]
    assert all(whole.startswith(content) and len(content) < len(whole) / 4 for _, content in stored[:3])


async def test_checkpoints_store_the_reply_while_it_streams(alice, scripted, settings):
    settings.CHAT_CHECKPOINT_SECONDS = 0.1
    scripted.reply(*[f"w{i} " for i in range(30)], delay=0.03)
    communicator = await open_stream(alice.token, body())
    events = await read_until(communicator, 12)
    assistant_id = events[0][2]["message_id"] + 1

    stored = await sync_to_async(Message.objects.get)(pk=assistant_id)
    assert stored.status == "streaming"
    assert stored.content.startswith("w0 w1 ")
    assert stored.updated_at > stored.created_at
    await close_all([communicator])
    assert (await wait_for_status(assistant_id, "interrupted")).content.startswith(stored.content)


@pytest.mark.parametrize("checkpoint_seconds", [0.1, 60])  # found by its next checkpoint, or by its final save
async def test_a_conversation_deleted_while_its_reply_streams_ends_the_stream(
    alice, scripted, settings, checkpoint_seconds
):
    """Deleted meanwhile (by its user in another tab, by staff in the admin): the stream ends with
    an `error`, not `sentiment` and `done` for a reply stored nowhere (found by an audit: it
    streamed on to `done`), and nothing of it is left behind."""
    settings.CHAT_CHECKPOINT_SECONDS = checkpoint_seconds
    scripted.reply(*[f"w{i} " for i in range(40)], delay=0.02)
    communicator = await open_stream(alice.token, body())
    events = await read_until(communicator, 3)

    await sync_to_async(Conversation.objects.filter(pk=events[0][2]["conversation_id"]).delete)()
    events += await read_to_end(communicator)

    names = [name for _, name, _ in events]
    assert names[-1] == "error"
    assert "sentiment" not in names
    assert "done" not in names
    assert events[-1][2] == {"message": "This conversation was deleted."}
    if checkpoint_seconds < 1:
        assert names.count("chunk") < 40  # stopped at its next checkpoint, not at the reply's end
    assert not await sync_to_async(Message.objects.exists)()


def test_a_reply_stored_after_a_later_turn_began_leaves_the_conversations_status_alone(alice):
    """An aborted or superseded reply's final save can land after the next turn started, or even
    ended: the conversation's status stays its latest turn's."""
    conversation = Conversation.objects.create(user=alice.user, status=TurnStatus.STREAMING)
    earlier_question = Message.objects.create(conversation=conversation, role="user", content="first")
    earlier = Message.objects.create(conversation=conversation, role="assistant", content="", status="streaming")
    Message.objects.create(conversation=conversation, role="user", content="second")
    Message.objects.create(conversation=conversation, role="assistant", content="done", status="complete")
    conversation.status = TurnStatus.COMPLETE
    conversation.save()
    turn = services.TurnStart(conversation.pk, earlier_question.pk, earlier.pk, [], False)

    services.turn_finish(turn=turn, result=TurnResult("half", TurnStatus.INTERRUPTED, {}))

    conversation.refresh_from_db()
    earlier.refresh_from_db()
    assert (earlier.status, earlier.content) == ("interrupted", "half")
    assert conversation.status == "complete"


def test_the_sweep_marks_replies_whose_heartbeat_stopped(alice):
    conversation = Conversation.objects.create(user=alice.user, status=TurnStatus.STREAMING)
    long_ago = timezone.now() - timedelta(minutes=5)
    orphan = Message.objects.create(
        conversation=conversation, role="assistant", content="half a rep", status="streaming", updated_at=long_ago
    )
    alive = Message.objects.create(conversation=conversation, role="assistant", content="live", status="streaming")

    assert streaming_messages_sweep() == 1

    orphan.refresh_from_db()
    alive.refresh_from_db()
    assert (orphan.status, orphan.content) == ("interrupted", "half a rep")
    assert alive.status == "streaming"


async def test_a_new_turn_does_not_wait_for_an_orphaned_reply(async_web, alice, scripted, settings):
    settings.CHAT_TURN_WAIT_SECONDS = 30
    await read_stream(async_web, alice, body("first"))
    conversation = await sync_to_async(Conversation.objects.get)()
    stale = timezone.now() - timedelta(minutes=5)
    await sync_to_async(Message.objects.filter(role="assistant").update)(status="streaming", updated_at=stale)

    response, _ = await asyncio.wait_for(
        read_stream(async_web, alice, body("second", conversation_id=str(conversation.pk))), timeout=10
    )

    assert response.status_code == 200


def turn_of(alice) -> tuple[services.TurnStart, Message]:
    conversation = Conversation.objects.create(user=alice.user)
    user = Message.objects.create(conversation=conversation, role="user", content="hi")
    assistant = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    return services.TurnStart(conversation.pk, user.pk, assistant.pk, [], False), assistant


async def test_finished_replies_are_saved_through_a_database_outage(alice, monkeypatch):
    turn, assistant = await sync_to_async(turn_of)(alice)
    failures = iter([OperationalError("server closed the connection"), OperationalError("connection refused")])

    def flaky_finish(**kwargs):
        failure = next(failures, None)
        if failure:
            raise failure
        return services.turn_finish(**kwargs)

    monkeypatch.setattr(streaming, "turn_finish", flaky_finish)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "m", ChatOptions(model="m"), "local")

    await streaming._save(plan, TurnResult(content="kept", status=TurnStatus.COMPLETE, model_info={}), within=30)

    await sync_to_async(assistant.refresh_from_db)()
    assert (assistant.content, assistant.status) == ("kept", "complete")


async def test_a_save_that_keeps_failing_gives_up_and_says_so(alice, monkeypatch, caplog):
    def down(**kwargs):
        raise OperationalError("down")

    monkeypatch.setattr(streaming, "turn_finish", down)
    turn = services.TurnStart(uuid.uuid4(), 1, 2, [], False)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "m", ChatOptions(model="m"), "local")

    with pytest.raises(OperationalError):
        await streaming._save(plan, TurnResult(content="", status=TurnStatus.FAILED, model_info={}), within=0.3)

    logged = [record.msg for record in caplog.records if isinstance(record.msg, dict)]
    (gave_up,) = [event for event in logged if event["event"] == "chat.turn.save_gave_up"]
    assert gave_up["level"] == "error"  # RELIABILITY 28: an ERROR naming the conversation and the message
    assert (gave_up["conversation_id"], gave_up["message_id"]) == (str(turn.conversation_id), 2)


async def test_a_stream_closed_at_a_yield_closes_the_provider_before_it_saves(alice, scripted, monkeypatch):
    """A stream closed at the `yield` it is suspended at (as the event loop's finaliser closes one
    that Django dropped mid-send) ends the provider's stream first, not after the save."""
    scripted.reply(*[f"w{i} " for i in range(10)], delay=0.01)
    turn, assistant = await sync_to_async(turn_of)(alice)
    provider_closed_at_save = []

    def finish(**kwargs):
        provider_closed_at_save.append(scripted.closed_count)
        return services.turn_finish(**kwargs)

    monkeypatch.setattr(streaming, "turn_finish", finish)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "test-model", ChatOptions(model="test-model"), "local")
    events = streaming.chat_turn_events(plan)
    start, first_chunk = await anext(events), await anext(events)  # now suspended at that chunk's yield

    await events.aclose()

    assert b"event: start" in start
    assert b"event: chunk" in first_chunk
    assert provider_closed_at_save == [1]
    await sync_to_async(assistant.refresh_from_db)()
    assert (assistant.status, assistant.content) == ("interrupted", "w0 ")


def slow_finish(seconds: float):
    def finish(**kwargs):
        time.sleep(seconds)  # in the database threads, as a save retried through a blip would be
        return services.turn_finish(**kwargs)

    return finish


async def test_keep_alives_go_on_while_the_reply_is_saved(alice, scripted, settings, monkeypatch):
    """No silence longer than the keep-alive interval, the reply's last steps included: a proxy
    whose read timeout exceeds it must not cut a stream whose save is slow (RELIABILITY pitfall 10)."""
    settings.CHAT_KEEPALIVE_SECONDS = 0.1
    scripted.reply("all", " of it")
    monkeypatch.setattr(streaming, "turn_finish", slow_finish(0.45))
    turn, assistant = await sync_to_async(turn_of)(alice)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "test-model", ChatOptions(model="test-model"), "local")

    frames = [frame async for frame in streaming.chat_turn_events(plan)]

    last_chunk = max(i for i, frame in enumerate(frames) if b"event: chunk" in frame)
    sentiment = next(i for i, frame in enumerate(frames) if b"event: sentiment" in frame)
    assert frames[last_chunk + 1 : sentiment].count(streaming.KEEPALIVE) >= 3
    assert b"event: done" in frames[-1]
    await sync_to_async(assistant.refresh_from_db)()
    assert (assistant.status, assistant.content) == ("complete", "all of it")


async def test_a_client_that_leaves_during_the_final_save_does_not_stop_it(alice, scripted, settings, monkeypatch):
    settings.CHAT_KEEPALIVE_SECONDS = 0.05
    scripted.reply("all", " of it")
    monkeypatch.setattr(streaming, "turn_finish", slow_finish(0.3))
    turn, assistant = await sync_to_async(turn_of)(alice)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "test-model", ChatOptions(model="test-model"), "local")
    events = streaming.chat_turn_events(plan)
    while not streaming._final_saves:  # until the save has started (the sentiment comes first)
        await anext(events)

    await events.aclose()  # the client leaves at that keep-alive

    saves = set(streaming._final_saves)
    assert len(saves) == 1
    await asyncio.wait(saves, timeout=5)
    await sync_to_async(assistant.refresh_from_db)()
    assert (assistant.status, assistant.content) == ("complete", "all of it")  # not `interrupted` on top


async def test_a_client_that_leaves_while_the_sentiment_runs_leaves_the_reply_interrupted(
    alice, scripted, settings, monkeypatch
):
    """As Django's handler does it: the task reading the stream is cancelled, here while the
    stream waits (with keep-alives) for the message's sentiment."""
    settings.CHAT_KEEPALIVE_SECONDS = 0.05
    scripted.reply("all", " of it")
    analysis_started, analysis_cancelled = asyncio.Event(), asyncio.Event()

    async def slow_analysis(**kwargs):
        analysis_started.set()
        try:
            await asyncio.sleep(30)
        finally:
            analysis_cancelled.set()

    monkeypatch.setattr(streaming, "analyze_message", slow_analysis)
    turn, assistant = await sync_to_async(turn_of)(alice)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "test-model", ChatOptions(model="test-model"), "local")
    keeping_alive = asyncio.Event()

    async def read_all() -> None:
        async for frame in streaming.chat_turn_events(plan):
            if frame == streaming.KEEPALIVE and analysis_started.is_set():
                keeping_alive.set()  # waiting for the sentiment, and saying so

    reader = asyncio.create_task(read_all())
    await asyncio.wait_for(keeping_alive.wait(), 5)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)

    assert analysis_cancelled.is_set()
    assert not streaming._final_saves
    await sync_to_async(assistant.refresh_from_db)()
    assert (assistant.status, assistant.content) == ("interrupted", "all of it")


async def test_a_client_that_leaves_while_the_reply_is_saved_does_not_stop_the_save(
    alice, scripted, settings, monkeypatch
):
    """As Django's handler does it: the task reading the stream is cancelled mid-save."""
    settings.CHAT_KEEPALIVE_SECONDS = 0.05
    scripted.reply("all", " of it")
    loop = asyncio.get_running_loop()
    saving = asyncio.Event()

    def finish(**kwargs):
        loop.call_soon_threadsafe(saving.set)
        return slow_finish(0.3)(**kwargs)

    monkeypatch.setattr(streaming, "turn_finish", finish)
    turn, assistant = await sync_to_async(turn_of)(alice)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "test-model", ChatOptions(model="test-model"), "local")

    async def read_all() -> None:
        async for _ in streaming.chat_turn_events(plan):
            pass

    reader = asyncio.create_task(read_all())
    await asyncio.wait_for(saving.wait(), 5)
    saves = set(streaming._final_saves)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)

    await asyncio.wait(saves, timeout=5)
    await sync_to_async(assistant.refresh_from_db)()
    assert (assistant.status, assistant.content) == ("complete", "all of it")


async def test_a_second_cancellation_does_not_stop_the_save_after_a_disconnect(alice, scripted, monkeypatch, caplog):
    """The partial reply of a client that left is stored even when the stream is cancelled again
    meanwhile (on SIGTERM, lia.shutdown cancels a request still running after 3 s once more;
    daphne does at its application_close_timeout), here while the save waits to retry through a
    database blip: the save goes on to store it, and no failure is logged for it."""
    scripted.reply(*[f"w{i} " for i in range(10)], delay=0.01)
    turn, assistant = await sync_to_async(turn_of)(alice)
    loop = asyncio.get_running_loop()
    first_attempt_failed = asyncio.Event()
    attempts = []

    def flaky_finish(**kwargs):
        attempts.append(kwargs["result"].status)
        if len(attempts) == 1:
            loop.call_soon_threadsafe(first_attempt_failed.set)
            raise OperationalError("server closed the connection")
        return services.turn_finish(**kwargs)

    monkeypatch.setattr(streaming, "turn_finish", flaky_finish)
    plan = streaming.TurnPlan(turn, "hi", "scripted", "test-model", ChatOptions(model="test-model"), "local")
    first_chunk = asyncio.Event()

    async def read_all() -> None:
        async for frame in streaming.chat_turn_events(plan):
            if b"event: chunk" in frame:
                first_chunk.set()

    reader = asyncio.create_task(read_all())
    await asyncio.wait_for(first_chunk.wait(), 5)
    reader.cancel()  # the client leaves
    await asyncio.wait_for(first_attempt_failed.wait(), 5)
    reader.cancel()  # and the stream is cancelled again while its save waits to retry
    await asyncio.gather(reader, return_exceptions=True)

    stored = await wait_for_status(assistant.pk, "interrupted", within=3)
    assert stored.content.startswith("w0 ")
    assert attempts == [TurnStatus.INTERRUPTED, TurnStatus.INTERRUPTED]
    assert "chat.turn.save_failed" not in caplog.text
