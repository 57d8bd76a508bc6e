import socket

import pytest

from sentiment import analyze_message
from sentiment.analyzers import local


@pytest.mark.parametrize(
    "text",
    [
        "I love Lia, she is great!",
        "Thank you so much, this is wonderful and it works perfectly!",
        "I'm so happy today, everything went amazingly well :)",
    ],
)
async def test_strongly_positive_messages_are_positive(text):
    result = await analyze_message(method="local", text=text)

    assert result.label == "Positive"
    assert result.score > 0.5
    assert result.source == "local"


@pytest.mark.parametrize(
    "text",
    [
        "This is awful and I hate it.",
        "I'm furious, this is the worst service I have ever used.",
        "I feel terrible and sad, nothing works and I want to cry.",
    ],
)
async def test_strongly_negative_messages_are_negative(text):
    result = await analyze_message(method="local", text=text)

    assert result.label == "Negative"
    assert result.score < -0.5


async def test_a_factual_message_is_neutral():
    result = await analyze_message(method="local", text="The meeting is at 3pm in room 4.")

    assert (result.score, result.label, result.emotion) == (0.0, "Neutral", "neutral")


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("Thanks so much for the help!", "grateful"),
        ("I hate this, it makes me so angry", "angry"),
        ("I am worried and stressed about my exam", "anxious"),
        ("How do I sort a list in Python?", "curious"),
        ("I'm not sad at all, it was lovely", "happy"),
    ],
)
def test_the_emotion_is_a_short_word_that_agrees_with_the_label(text, emotion):
    result = local.analyze_sync(text)

    assert result.emotion == emotion
    assert 1 <= len(result.emotion.split()) <= 5


def test_it_works_with_the_network_blocked(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    local._analyzer.cache_clear()  # load the lexicon again, offline

    assert local.analyze_sync("What a wonderful day!").label == "Positive"
