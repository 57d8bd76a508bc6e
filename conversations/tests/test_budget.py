"""The per-user daily token budget (CHAT_DAILY_TOKEN_BUDGET, RELIABILITY 17): 429 once the UTC
day's spending reaches it, counted from reported usage or estimated from characters."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async

from conversations.budget import daily_token_budget_check
from conversations.models import Conversation, Message
from conversations.selectors import user_tokens_spent
from conversations.tests.conftest import body, read_stream

pytestmark = pytest.mark.django_db(transaction=True)

# The first scripted reply is reported as 11 prompt + 4 completion tokens (later ones as more).
TURN_TOKENS = 15
# 23:00 UTC tomorrow: later than the personas' tokens were issued, well before they expire.
EVENING = datetime.now(UTC).replace(hour=23, minute=0, second=0, microsecond=0) + timedelta(days=1)


async def turn(client, persona, **extra):
    return await read_stream(client, persona, body(**extra))


def refused_wait(response) -> int:
    assert response.status_code == 429
    payload = response.json()
    assert payload["error"]["message"] == "You have used today's token budget. Please try again after it resets."
    assert payload["error"]["details"]["retry_after"] == int(response["Retry-After"])
    return int(response["Retry-After"])


def test_no_budget_costs_no_query(alice, settings, django_assert_num_queries):
    settings.CHAT_DAILY_TOKEN_BUDGET = 0

    with django_assert_num_queries(0):
        daily_token_budget_check(user_id=alice.user.pk)


def test_a_budget_costs_one_query(alice, settings, django_assert_num_queries):
    settings.CHAT_DAILY_TOKEN_BUDGET = 1000

    with django_assert_num_queries(1):
        daily_token_budget_check(user_id=alice.user.pk)


async def test_turns_stream_under_the_budget_and_get_429_once_it_is_spent(
    async_web, alice, bob, scripted, settings, caplog
):
    caplog.set_level(logging.INFO)
    settings.CHAT_DAILY_TOKEN_BUDGET = 2 * TURN_TOKENS - 1
    with time_machine.travel(EVENING, tick=False):
        first, first_raw = await turn(async_web, alice)
        second, _ = await turn(async_web, alice)  # 15 spent: still under
        refused, _ = await turn(async_web, alice)  # 15 + 19 spent
        others, _ = await turn(async_web, bob)

    assert first.status_code == 200
    assert b"event: done" in first_raw
    assert second.status_code == 200
    assert refused_wait(refused) == 3600  # until midnight UTC
    assert others.status_code == 200
    assert len(scripted.calls) == 3  # the refused turn reached no provider
    assert await Message.objects.filter(conversation__user=alice.user).acount() == 4
    [line] = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "ratelimit.rejected"]
    assert (line["scope"], line["user_id"], line["budget"]) == ("chat_tokens", alice.user.pk, 29)
    assert line["spent"] >= 29


async def test_the_budget_check_comes_after_validation_and_before_the_conversation_lookup(
    async_web, alice, bob, scripted, settings
):
    settings.CHAT_DAILY_TOKEN_BUDGET = 1
    with time_machine.travel(EVENING, tick=False):
        await turn(async_web, alice)
        invalid, _ = await read_stream(async_web, alice, {"message": ""})
        bobs = await sync_to_async(Conversation.objects.create)(user=bob.user)
        foreign, _ = await turn(async_web, alice, conversation_id=str(bobs.pk))

    assert invalid.status_code == 422
    assert refused_wait(foreign) == 3600


async def test_the_budget_comes_back_at_midnight_utc(async_web, alice, scripted, settings):
    settings.CHAT_DAILY_TOKEN_BUDGET = TURN_TOKENS
    with time_machine.travel(EVENING + timedelta(minutes=59), tick=False) as clock:
        await turn(async_web, alice)
        conversation_id = str((await Conversation.objects.aget()).pk)
        late, _ = await turn(async_web, alice, conversation_id=conversation_id)

        clock.move_to(EVENING + timedelta(hours=1, seconds=1))
        next_day, next_day_raw = await turn(async_web, alice, conversation_id=conversation_id)
        again, _ = await turn(async_web, alice, conversation_id=conversation_id)

    assert refused_wait(late) == 60
    assert next_day.status_code == 200
    assert b"event: done" in next_day_raw
    # Yesterday's conversation, continued today: today's turn counts, so the budget is spent again.
    assert refused_wait(again) == 24 * 3600 - 1


async def test_replies_without_reported_usage_are_estimated_from_characters(
    async_web, alice, fake_llm_providers, settings
):
    settings.CHAT_DAILY_TOKEN_BUDGET = 1_000_000
    fake_llm_providers.script(text="Twelve chars and a few more words of reply", usage=False)
    with time_machine.travel(EVENING, tick=False):
        response, raw = await turn(async_web, alice, message="Hello there!", provider="openai", model="gpt-4o-mini")
        spent = await sync_to_async(user_tokens_spent)(user_id=alice.user.pk, since=EVENING - timedelta(hours=1))

    assert response.status_code == 200
    assert b"event: done" in raw
    reply = await Message.objects.aget(role=Message.Role.ASSISTANT)
    assert (reply.prompt_tokens, reply.completion_tokens) == (None, None)
    assert reply.content == "Twelve chars and a few more words of reply"
    assert spent == 3 + 11  # ceil(12 / 4) for the message, ceil(42 / 4) for the reply


def test_spending_counts_reported_usage_and_only_this_users_turns_of_the_window(alice, bob):
    now = EVENING
    mine = Conversation.objects.create(user=alice.user, updated_at=now)
    theirs = Conversation.objects.create(user=bob.user, updated_at=now)

    def turn_at(conversation, when, text, reply, **usage):
        Message.objects.create(conversation=conversation, role="user", content=text, created_at=when)
        Message.objects.create(conversation=conversation, role="assistant", content=reply, created_at=when, **usage)

    turn_at(mine, now, "x" * 400, "y" * 400, prompt_tokens=120, completion_tokens=30)  # 150, as reported
    turn_at(mine, now + timedelta(seconds=1), "x" * 9, "y" * 8)  # no usage: 3 + 2
    turn_at(mine, now + timedelta(seconds=2), "x" * 400, "y" * 8, prompt_tokens=70)  # partial usage: 70 + 2
    turn_at(mine, now - timedelta(days=1), "x", "y", prompt_tokens=1000, completion_tokens=1000)  # yesterday
    turn_at(theirs, now, "x", "y", prompt_tokens=1000, completion_tokens=1000)  # someone else's

    assert user_tokens_spent(user_id=alice.user.pk, since=now - timedelta(hours=1)) == 150 + 5 + 72
    assert user_tokens_spent(user_id=alice.user.pk, since=now + timedelta(seconds=3)) == 0


def test_turns_stored_at_the_same_time_are_estimated_from_their_own_messages(alice):
    """Turns sent together into one conversation can share a created_at (the write-ahead times a
    later turn no earlier than the conversation's latest message): each reply's prompt is still
    estimated from its own user message, the one just before it."""
    now = EVENING
    conversation = Conversation.objects.create(user=alice.user, updated_at=now)
    for text in ["x" * 400, "x" * 4]:  # 100 + 1, and 1 + 1
        Message.objects.create(conversation=conversation, role="user", content=text, created_at=now)
        Message.objects.create(conversation=conversation, role="assistant", content="y", created_at=now)

    assert user_tokens_spent(user_id=alice.user.pk, since=now - timedelta(hours=1)) == 101 + 2
