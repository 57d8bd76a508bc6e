"""A client that goes away just as a token arrives: the stream must stop all the same.

On Python 3.11 `asyncio.wait_for` swallows a cancellation that lands in the same loop turn as
the completion of what it waits for. The chat stream waits for each token that way, so a
disconnect (Django cancels the request task) that coincides with a token is lost: the stream
runs on to the end of the reply, the provider keeps generating (and billing), and the reply is
stored `complete` although the user never saw it. Seen under load in the SIGTERM fault test.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.tests.conftest import open_stream, read_until
from llm import ChatMessage, ChatOptions, Delta, Finish, LLMError, TextDelta, Usage

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = [f"word{i} " for i in range(20)]


def cancel_the_request_task() -> None:
    """What Django's ASGI handler does when the client disconnects: cancel its request task."""
    for task in asyncio.all_tasks():
        if task.get_coro().__qualname__.endswith("handle.<locals>.process_request"):
            task.cancel()


class DisconnectAsTokenArrives:
    """Yields a token and, in the same loop turn, the client's disconnect reaches the stream."""

    produced: list[str] = []

    def __init__(self, *, name: str, config: dict[str, Any]) -> None:
        self.name = name

    def preload(self) -> None:
        pass

    async def stream(self, messages: Sequence[ChatMessage], options: ChatOptions) -> AsyncIterator[Delta]:
        for index, word in enumerate(WORDS):
            self.produced.append(word)
            yield TextDelta(word)
            if index == 1:
                cancel_the_request_task()
            await asyncio.sleep(0.02)
        yield Finish("stop", Usage(prompt_tokens=1, completion_tokens=len(WORDS)))

    async def complete_json(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise LLMError("not scripted")


@pytest.fixture
def racing_provider(settings) -> type[DisconnectAsTokenArrives]:
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "racing": {"BACKEND": "conversations.tests.test_stream_cancellation.DisconnectAsTokenArrives"},
    }
    DisconnectAsTokenArrives.produced = []
    return DisconnectAsTokenArrives


async def test_a_disconnect_that_coincides_with_a_token_still_stops_the_stream(alice, racing_provider):
    payload = {"message": "Hello", "provider": "racing", "model": "m", "sentiment_method": "local"}
    communicator = await open_stream(alice.token, payload)
    await read_until(communicator, 1)
    await communicator.wait(timeout=5)

    assistant = await sync_to_async(Message.objects.get)(role="assistant")
    assert assistant.status == "interrupted"
    assert "".join(WORDS).startswith(assistant.content)
    assert len(racing_provider.produced) < len(WORDS)  # generation stopped
