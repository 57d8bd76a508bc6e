"""manage.py rescore_sentiment rewrites stored message sentiment and the running state."""

from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations.models import Conversation, Message
from conversations.tests.conftest import body
from llm import ProviderUnavailable

pytestmark = pytest.mark.django_db(transaction=True)

STALE = {"score": 0.0, "label": "Neutral", "emotion": "neutral", "source": "default", "details": {"error": "timeout"}}


def conversation_with(persona, texts, *, updated_days_ago=0, provider="") -> Conversation:
    at = timezone.now() - timedelta(days=updated_days_ago)
    conversation = Conversation.objects.create(user=persona.user, title="t", updated_at=at, provider=provider)
    for index, text in enumerate(texts):
        Message.objects.create(
            conversation=conversation,
            role="user",
            content=text,
            sentiment_data={"message": STALE, "cumulative": None},
            created_at=at + timedelta(seconds=index * 2),
        )
        Message.objects.create(
            conversation=conversation, role="assistant", content="ok", created_at=at + timedelta(seconds=index * 2 + 1)
        )
    return conversation


def rescore(*args: str) -> str:
    out = StringIO()
    call_command("rescore_sentiment", *args, stdout=out)
    return out.getvalue()


def test_rescore_rewrites_messages_and_the_running_state(alice):
    conversation = conversation_with(alice, ["I love this, it's wonderful!", "This is awful, I hate it."])

    output = rescore("--method", "local")

    first, second = Message.objects.filter(role="user").order_by("created_at")
    assert first.sentiment_data["message"]["label"] == "Positive"
    assert first.sentiment_data["message"]["source"] == "local"
    assert second.sentiment_data["message"]["label"] == "Negative"
    mean = (first.sentiment_data["message"]["score"] + second.sentiment_data["message"]["score"]) / 2
    assert second.sentiment_data["cumulative"]["score"] == pytest.approx(mean, abs=1e-4)
    conversation.refresh_from_db()
    assert conversation.sentiment_state["count"] == 2
    assert "Rescored 2 message(s) in 1 conversation(s)" in output
    assert "1/1" in output


def test_rescore_selects_by_conversation_and_date(alice):
    recent = conversation_with(alice, ["I love it!"])
    old = conversation_with(alice, ["I love it!"], updated_days_ago=30)

    rescore("--since", (timezone.now() - timedelta(days=7)).date().isoformat())

    assert Message.objects.get(conversation=recent, role="user").sentiment_data["message"]["source"] == "local"
    assert Message.objects.get(conversation=old, role="user").sentiment_data["message"] == STALE

    rescore("--conversation", str(old.pk))
    assert Message.objects.get(conversation=old, role="user").sentiment_data["message"]["label"] == "Positive"


def test_rescore_with_an_llm_method_uses_the_conversations_provider(alice, fake_llm_providers):
    fake_llm_providers.script(json={"score": -0.4, "label": "negative", "emotion": "worried"})
    conversation_with(alice, ["I'm not sure about this."], provider="openai")

    rescore("--method", "llm_separate")

    stored = Message.objects.get(role="user").sentiment_data["message"]
    assert (stored["score"], stored["label"], stored["source"]) == (-0.4, "Negative", "llm_separate")


def test_rescore_uses_the_conversations_model_even_one_no_longer_offered(alice, fake_llm_providers, settings):
    """The catalogue limits what users may ask for, not an operator's re-score of what was served
    (a review found such conversations re-scored by the local analyzer, silently)."""
    settings.LLM_CATALOGUE_ONLY = True
    fake_llm_providers.script(json={"score": -0.4, "label": "negative", "emotion": "worried"})
    conversation = conversation_with(alice, ["I'm not sure about this."], provider="openai")
    Conversation.objects.filter(pk=conversation.pk).update(model="gpt-4o-2024-08-06")

    rescore("--method", "llm_separate")

    stored = Message.objects.get(role="user").sentiment_data["message"]
    assert stored["source"] == "llm_separate"
    assert fake_llm_providers.last.model == "gpt-4o-2024-08-06"


def live_state(conversation_id: str) -> tuple[dict | None, list[tuple[str, str, dict | None]]]:
    conversation = Conversation.objects.get(pk=conversation_id)
    messages = conversation.messages.order_by("created_at", "id")
    return conversation.sentiment_state, [(m.role, m.status, m.sentiment_data) for m in messages]


async def test_rescore_folds_only_completed_turns_as_the_live_chat_does(stream, alice, scripted):
    """Found by an audit: the re-score scored and folded every user message, also one whose turn
    failed at the provider, which the live chat never folds in (CONTRACT §9.7: one per completed
    turn), so the running count went from 2 to 3 and that message got a sentiment."""
    scripted.reply("Glad ", "to hear it.")
    _, events = await stream(alice, body("I love it, great"))
    conversation_id = events[0][2]["conversation_id"]
    scripted.steps = [("fail", ProviderUnavailable("boom"))]
    _, events = await stream(alice, body("I hate this, awful", conversation_id=conversation_id))
    assert events[-1][1] == "error"
    scripted.reply("Good.")
    await stream(alice, body("I love it again", conversation_id=conversation_id))
    live = await sync_to_async(live_state)(conversation_id)
    assert live[0]["count"] == 2
    assert live[1][2] == ("user", "complete", None)  # the failed turn's message: no sentiment
    assert live[1][3][1] == "failed"

    output = await sync_to_async(rescore, thread_sensitive=False)("--conversation", conversation_id)

    assert await sync_to_async(live_state)(conversation_id) == live
    assert "Rescored 2 message(s) in 1 conversation(s)" in output


def test_rescore_clears_the_sentiment_of_a_turn_that_did_not_complete(alice):
    conversation = conversation_with(alice, ["I love it!", "I hate it!", "Still here."])
    _, failed, interrupted = Message.objects.filter(role="assistant").order_by("created_at")
    failed.status, interrupted.status = "failed", "interrupted"
    Message.objects.bulk_update([failed, interrupted], ["status"])

    rescore()

    first, second, third = Message.objects.filter(role="user").order_by("created_at")
    assert first.sentiment_data["message"]["label"] == "Positive"
    assert second.sentiment_data is None
    assert third.sentiment_data is None
    conversation.refresh_from_db()
    assert conversation.sentiment_state["count"] == 1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--conversation", "nope"], "UUID"),
        (["--conversation", "00000000-0000-0000-0000-000000000000"], "no such conversation"),
        (["--since", "yesterday"], "not a date"),
        # Found by an audit: a raw "ValueError: month must be in 1..12".
        (
            ["--since", "2024-13-45"],
            r"--since: '2024-13-45' is not a valid date or datetime \(month must be in 1\.\.12\)",
        ),
        (["--since", "2024-02-30T10:00:00"], "is not a valid date or datetime"),
    ],
)
def test_rescore_rejects_bad_arguments(db, args, error):
    with pytest.raises(CommandError, match=error):
        rescore(*args)


NLP_SCORED = {"score": 0.7, "label": "Positive", "emotion": "joy", "source": "nlp_api", "details": {"magnitude": 0.9}}


@pytest.mark.parametrize(
    ("args", "stored", "error"),
    [
        (["--method", "nlp_api"], STALE, "--method nlp_api: Google Cloud Natural Language is not configured here"),
        ([], NLP_SCORED, "Some messages were scored with nlp_api, and Google Cloud Natural Language is not configured"),
    ],
)
def test_rescore_refuses_nlp_api_without_cloud_nl(alice, settings, args, stored, error):
    """Found by an audit: without Cloud NL configured, re-scoring with nlp_api (asked for, or the
    method the messages were scored with) replaced every message's sentiment, and the running
    sentiment, with the neutral "not configured" result."""
    settings.GOOGLE_NL_API_ENDPOINT = settings.GOOGLE_NL_API_KEY = settings.GOOGLE_APPLICATION_CREDENTIALS = ""
    conversation = conversation_with(alice, ["I love this, it's wonderful!"])
    Message.objects.filter(role="user").update(sentiment_data={"message": stored, "cumulative": None})

    with pytest.raises(CommandError, match=error):
        rescore(*args)

    assert Message.objects.get(role="user").sentiment_data["message"] == stored
    assert rescore("--method", "local", "--conversation", str(conversation.pk))  # another method still can
