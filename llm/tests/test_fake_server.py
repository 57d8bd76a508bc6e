"""The provider fake's own waits (llm.testing): a paced reply sleeps until its next frame, but
a client that goes away or a fake that stops ends the wait at once."""

import threading

import httpx

from llm.testing.fake_server import FakeLLMServer

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_stop_ends_a_wait_for_the_next_frame():
    fake = FakeLLMServer().start()
    fake.script(chunks=3, delay=30.0)
    with (
        httpx.Client(timeout=10.0) as client,
        client.stream("POST", f"{fake.openai_base_url}/chat/completions", json=BODY) as response,
    ):
        pieces = response.iter_raw()
        assert next(pieces).startswith(b"data: ")  # the reply has started; its next frame is 30 s away
        threading.Timer(0.2, fake.stop).start()
        rest = b"".join(pieces)  # ends when the handler stops waiting (the 10 s read timeout otherwise)

    assert rest.endswith(b"data: [DONE]\n\n")
    fake.stop()  # again: nothing happens


def test_a_client_gone_during_a_wait_is_recorded_as_a_disconnect(fake_llm):
    fake_llm.script(chunks=3, delay=30.0)
    with (
        httpx.Client(timeout=10.0) as client,
        client.stream("POST", f"{fake_llm.openai_base_url}/chat/completions", json=BODY) as response,
    ):
        next(response.iter_raw())
    # The socket is closed mid-gap; the fake notices it then, not when its 30 s gap ends.

    assert fake_llm.wait_for_disconnect(timeout=5)
    assert fake_llm.last.outcome == "disconnected"
