"""POST /api/v1/chat/stream (CONTRACT §7): frames, order, persistence, failures."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from conversations.models import Conversation, Message, TurnStatus
from conversations.services import conversation_title_from
from conversations.tests.conftest import STREAM, body, open_stream, parse_events, read_stream
from llm import ProviderRateLimited, ProviderUnavailable

pytestmark = pytest.mark.django_db(transaction=True)


def messages_of(conversation_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("created_at", "id"))


amessages_of = sync_to_async(messages_of)


async def test_a_full_turn_streams_the_contract_frames_in_order(async_web, alice, scripted):
    scripted.reply("Hi", "! ", "How ", "can I help?", thoughts=["Greeting", " back."])

    response, raw = await read_stream(async_web, alice, body("I love this, it is wonderful!"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert "Content-Length" not in response
    assert "Content-Encoding" not in response
    assert response["Access-Control-Allow-Origin"] == "http://localhost:5173"
    messages = await amessages_of((await sync_to_async(Conversation.objects.get)()).pk)
    user, assistant = messages
    conversation_id = str(user.conversation_id)
    expected = (
        f'id: 1\nevent: start\ndata: {{"conversation_id":"{conversation_id}","message_id":{user.pk}}}\n\n'
        'id: 2\nevent: thought\ndata: {"content":"Greeting"}\n\n'
        'id: 3\nevent: thought\ndata: {"content":" back."}\n\n'
        'id: 4\nevent: chunk\ndata: {"content":"Hi"}\n\n'
        'id: 5\nevent: chunk\ndata: {"content":"! "}\n\n'
        'id: 6\nevent: chunk\ndata: {"content":"How "}\n\n'
        'id: 7\nevent: chunk\ndata: {"content":"can I help?"}\n\n'
        'id: 8\nevent: sentiment\ndata: {"message":{"score":0.8478,"label":"Positive","emotion":"happy"},'
        '"cumulative":{"score":0.8478,"label":"Positive","emotion":"happy","summary":"User is happy"}}\n\n'
        'id: 9\nevent: done\ndata: {"finish_reason":"stop"}\n\n'
    )
    assert raw.decode() == expected
    assert (user.role, user.content, user.status) == ("user", "I love this, it is wonderful!", "complete")
    assert user.sentiment_data["message"]["source"] == "local"
    assert user.sentiment_data["cumulative"]["summary"] == "User is happy"
    assert (assistant.role, assistant.content, assistant.status) == ("assistant", "Hi! How can I help?", "complete")
    assert assistant.model_info["provider"] == "scripted"
    assert assistant.model_info["model"] == "test-model"
    assert assistant.model_info["thoughts"] == ["Greeting", " back."]
    assert assistant.model_info["finish_reason"] == "stop"
    assert (assistant.prompt_tokens, assistant.completion_tokens) == (11, 4)


async def test_unicode_is_sent_unescaped_and_newlines_escaped(async_web, alice, scripted):
    scripted.reply("héllo 👋", "\nline two", "\u05e9\u05dc\u05d5\u05dd")

    _, raw = await read_stream(async_web, alice, body("مرحبا 👋"))

    text = raw.decode()
    assert 'data: {"content":"héllo 👋"}\n\n' in text
    assert 'data: {"content":"\\nline two"}\n\n' in text
    assert "\u05e9\u05dc\u05d5\u05dd" in text
    user, assistant = await amessages_of((await sync_to_async(Conversation.objects.get)()).pk)
    assert user.content == "مرحبا 👋"
    assert assistant.content == "héllo 👋\nline two\u05e9\u05dc\u05d5\u05dd"


async def test_surrogates_from_a_provider_are_paired_or_replaced(async_web, alice, scripted):
    """JSON can carry a character beyond the BMP as two escaped surrogates, and a provider's
    stream can cut between them; an unpaired one could be neither sent nor stored (found by an
    audit: the turn ended in an error, an event id was skipped and the reply was lost)."""
    scripted.reply("Nice ", "\ud83d", "\ude00", " a\ud800b", " end \ud83d", thoughts=["hm \udfff", " so \ud83d"])

    _, raw = await read_stream(async_web, alice, body("split pair"))

    events = parse_events(raw)
    assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
    assert [name for _, name, _ in events][-1] == "done"
    chunks = [data["content"] for _, name, data in events if name == "chunk"]
    assert chunks == ["Nice ", "\U0001f600", " a\ufffdb", " end ", "\ufffd"]
    assert [data["content"] for _, name, data in events if name == "thought"] == ["hm \ufffd", " so ", "\ufffd"]
    _, assistant = await amessages_of((await sync_to_async(Conversation.objects.get)()).pk)
    assert (assistant.content, assistant.status) == ("Nice \U0001f600 a\ufffdb end \ufffd", "complete")
    assert assistant.model_info["thoughts"] == ["hm \ufffd", " so ", "\ufffd"]


async def test_the_stream_is_written_before_start_and_titled(async_web, alice, scripted):
    text = "Can you explain how photosynthesis works in desert plants please?"

    await read_stream(async_web, alice, body(text))

    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.title == "Can you explain how photosynthesis works in..."
    assert conversation.user_id == alice.user.pk
    assert conversation.status == TurnStatus.COMPLETE


async def test_the_turn_is_committed_before_start_and_the_reply_before_done(alice, scripted):
    """RELIABILITY 18 and 21, read from the database while the stream is open: at `start` the
    user message and a `streaming` placeholder are committed; at `done`, the whole reply."""
    scripted.reply("Hi", "! ", "How ", "can I help?", delay=0.05)
    communicator = await open_stream(alice.token, body("Remember this"))

    def stored() -> list[tuple[str, str, str]]:
        return list(Message.objects.order_by("created_at", "id").values_list("role", "content", "status"))

    received, at = b"", {}
    while "done" not in at:
        message = await communicator.receive_output(timeout=5)
        received += message.get("body", b"")
        for _, name, _ in parse_events(received):
            if name in ("start", "done") and name not in at:
                at[name] = await sync_to_async(stored)()
    await communicator.wait(timeout=5)
    await sync_to_async(connections.close_all)()  # the reads' connection (PostgreSQL drops the test DB)

    assert at["start"] == [("user", "Remember this", "complete"), ("assistant", "", "streaming")]
    assert at["done"] == [("user", "Remember this", "complete"), ("assistant", "Hi! How can I help?", "complete")]


async def test_a_second_turn_sends_the_earlier_turns_to_the_provider(stream, alice, scripted):
    _, first = await stream(alice, body("My name is Ada."))
    conversation_id = first[0][2]["conversation_id"]
    scripted.reply("Nice to meet you, Ada.")

    _, second = await stream(alice, body("What is my name?", conversation_id=conversation_id))

    assert second[0][2]["conversation_id"] == conversation_id
    sent, options = scripted.calls[-1]
    assert [(m.role, m.content) for m in sent] == [
        ("user", "My name is Ada."),
        ("assistant", "Hi! How can I help?"),
        ("user", "What is my name?"),
    ]
    assert "Lia" in options.system_prompt
    conversation = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.title == "My name is Ada."  # set once, from the first message
    assert len(await amessages_of(conversation_id)) == 4


async def test_context_is_bounded_by_the_budget(stream, alice, scripted, settings):
    settings.CHAT_CONTEXT_MAX_MESSAGES = 3
    _, events = await stream(alice, body("one"))
    conversation_id = events[0][2]["conversation_id"]
    for text in ("two", "three"):
        await stream(alice, body(text, conversation_id=conversation_id))

    sent, _ = scripted.calls[-1]
    assert [m.content for m in sent] == ["Hi! How can I help?", "two", "Hi! How can I help?", "three"]


async def test_model_settings_reach_the_provider(stream, alice, scripted):
    settings_body = {"temperature": 1, "max_tokens": 8192, "top_p": 0.5, "frequency_penalty": 0, "presence_penalty": -1}

    await stream(alice, body(model_settings=settings_body))

    _, options = scripted.calls[-1]
    assert (options.temperature, options.max_tokens, options.top_p) == (1.0, 8192, 0.5)
    assert (options.frequency_penalty, options.presence_penalty) == (0.0, -1.0)
    assert options.model == "test-model"


async def test_defaults_apply_when_settings_are_absent(stream, alice, scripted):
    await stream(alice, body(model_settings=None))

    _, options = scripted.calls[-1]
    assert (options.temperature, options.max_tokens) == (0.7, 2048)


async def test_messages_array_format_uses_the_last_user_text(stream, alice, scripted):
    payload = {
        "provider": "scripted",
        "id": "chat-1",
        "trigger": "submit-message",
        "messages": [
            {"id": "1", "role": "user", "parts": [{"type": "text", "text": "old"}]},
            {"id": "2", "role": "assistant", "parts": [{"type": "text", "text": "reply"}]},
            {
                "id": "3",
                "role": "user",
                "parts": [
                    {"type": "text", "text": "new"},
                    {"type": "file", "url": "x"},
                    {"type": "text", "text": ""},
                    {"type": "text", "text": "question"},
                ],
            },
        ],
    }

    response, _ = await stream(alice, payload)

    assert response.status_code == 200
    sent, _ = scripted.calls[-1]
    assert [(m.role, m.content) for m in sent] == [("user", "new question")]


async def test_provider_failure_mid_stream_keeps_the_partial_reply(stream, alice, scripted):
    scripted.steps = [("text", "Partial "), ("text", "answer"), ("fail", ProviderUnavailable("boom"))]

    response, events = await stream(alice, body())

    assert response.status_code == 200
    assert [name for _, name, _ in events] == ["start", "chunk", "chunk", "error"]
    assert events[-1][2] == {"message": ProviderUnavailable.public_message}
    assert [event_id for event_id, _, _ in events] == [1, 2, 3, 4]
    user, assistant = await amessages_of(events[0][2]["conversation_id"])
    assert user.content == "Hello!"
    assert (assistant.content, assistant.status) == ("Partial answer", "failed")
    assert scripted.closed_count == 1


async def test_provider_failure_before_any_token_is_an_error_event(stream, alice, scripted):
    scripted.steps = [("fail", ProviderRateLimited("429", retry_after=3))]

    _, events = await stream(alice, body())

    assert [name for _, name, _ in events] == ["start", "error"]
    assert "busy" in events[-1][2]["message"]
    _, assistant = await amessages_of(events[0][2]["conversation_id"])
    assert (assistant.content, assistant.status) == ("", "failed")


async def test_a_bug_inside_the_stream_becomes_a_generic_error_event(stream, alice, scripted):
    scripted.steps = [("text", "so far"), ("crash", None)]

    _, events = await stream(alice, body())

    assert events[-1][1] == "error"
    assert events[-1][2]["message"] == "An error occurred processing your request."
    _, assistant = await amessages_of(events[0][2]["conversation_id"])
    assert (assistant.content, assistant.status) == ("so far", "failed")


async def test_unconfigured_provider_in_production_ends_with_an_error_event(stream, alice, settings):
    settings.LLM_OFFLINE_FALLBACK = False

    response, events = await stream(alice, {"message": "Hi", "provider": "openai", "model": "gpt-4o"})

    assert response.status_code == 200
    assert [name for _, name, _ in events] == ["start", "error"]
    assert "not configured" in events[-1][2]["message"]
    user, assistant = await amessages_of(events[0][2]["conversation_id"])
    assert user.content == "Hi"
    assert assistant.status == "failed"


async def test_offline_fallback_serves_every_contract_model(stream, alice):
    models = {
        "gemini": ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"],
        "openai": ["gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini"],
    }
    for provider, ids in models.items():
        for model in ids:
            _, events = await stream(alice, {"message": "Hi", "provider": provider, "model": model})
            assert events[-1][1] == "done", (provider, model)
    stored = await sync_to_async(list)(Message.objects.filter(role="assistant").values_list("model_info", flat=True))
    assert {info["served_by"] for info in stored} == {"offline"}


async def test_keepalive_comments_fill_silences(stream, alice, scripted, settings):
    settings.CHAT_KEEPALIVE_SECONDS = 0.05
    scripted.steps = [("sleep", 0.3), ("text", "late"), ("finish", "stop")]

    _, events = await stream(alice, body())

    kinds = [name for _, name, _ in events]
    assert kinds[0] == "start"
    assert ":" in kinds[: kinds.index("chunk")]
    assert (None, ":", ": keep-alive") in events
    assert kinds[-1] == "done"


async def test_a_reply_over_the_time_cap_is_stopped_and_kept(stream, alice, scripted, settings):
    settings.CHAT_STREAM_MAX_SECONDS = 0.2
    scripted.steps = [("text", "slow "), ("sleep", 5), ("text", "never"), ("finish", "stop")]

    _, events = await stream(alice, body())

    assert events[-1][1:] == ("error", {"message": "The reply took too long and was stopped."})
    _, assistant = await amessages_of(events[0][2]["conversation_id"])
    assert (assistant.content, assistant.status) == ("slow ", "interrupted")
    assert scripted.closed_count == 1


async def test_concurrent_turns_in_one_conversation_are_serialised(async_web, alice, scripted):
    scripted.reply("first ", "reply", delay=0.05)
    _, raw = await read_stream(async_web, alice, body("one"))
    conversation_id = json.loads(raw.split(b"\n")[2][6:])["conversation_id"]

    scripted.reply("a ", "slow ", "reply", delay=0.1)
    second = asyncio.create_task(read_stream(async_web, alice, body("two", conversation_id=conversation_id)))
    await asyncio.sleep(0.12)
    third = asyncio.create_task(read_stream(async_web, alice, body("three", conversation_id=conversation_id)))
    await asyncio.gather(second, third)

    transcript = [(m.role, m.content, m.status) for m in await amessages_of(conversation_id)]
    assert transcript == [
        ("user", "one", "complete"),
        ("assistant", "first reply", "complete"),
        ("user", "two", "complete"),
        ("assistant", "a slow reply", "complete"),
        ("user", "three", "complete"),
        ("assistant", "a slow reply", "complete"),
    ]
    third_context, _ = scripted.calls[-1]
    assert [m.content for m in third_context][-3:] == ["two", "a slow reply", "three"]


def test_titles_follow_the_contract():
    assert conversation_title_from("Hello") == "Hello"
    assert conversation_title_from("  padded  ") == "padded"
    assert conversation_title_from("x" * 60) == "x" * 50 + "..."
    assert (
        conversation_title_from("Can you explain how photosynthesis works in desert plants please?")
        == "Can you explain how photosynthesis works in..."
    )
    assert len(conversation_title_from("word " * 30)) <= 53


async def test_stream_path_is_exact(async_web, alice, scripted):
    response = await async_web.post(
        STREAM + "/", json.dumps(body()), content_type="application/json", headers=alice.bearer
    )

    assert response.status_code == 404
