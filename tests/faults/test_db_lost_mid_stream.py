"""The database goes away while a reply is streaming (RELIABILITY 28), under a real daphne.

An open stream holds no database connection; it needs one again to store the reply. Whatever
happened to PostgreSQL meanwhile, the client must get a well-formed stream that ends with
`done` or an `error` event (never a cut or hanging body), and the reply must be stored once
the database is back.
"""

import time

import httpx
import pytest

from lia.testing.servers import wait_until
from tests.faults.conftest import bearer, chat_body, open_stream, register, text_of

WORDS = [f"piece{i} " for i in range(20)]
FULL_TEXT = "".join(WORDS)


def stored_reply(client: httpx.Client, token: str, conversation_id: str) -> dict | None:
    response = client.get(f"/api/v1/chat/conversation/{conversation_id}", headers=bearer(token))
    if response.status_code != 200:
        return None
    messages = response.json()["messages"]
    return messages[-1] if messages and messages[-1]["role"] == "assistant" else None


@pytest.mark.parametrize("fault", ["terminate_backends", "fast_restart"])
def test_database_cut_off_mid_stream_is_invisible(live, fault):
    """The app's pooled connections are killed (pg_terminate_backend) or PostgreSQL restarts
    while the reply streams, and is back before it ends: the turn completes as if nothing
    happened, and the reply is stored complete."""
    live.fake.script(chunks=WORDS, delay=0.1)
    lia = live.start()
    with lia.client(timeout=60) as client:
        token = register(client)
        with open_stream(client, token, chat_body("Tell me something")) as stream:
            stream.read_until(chunks=3)
            if fault == "terminate_backends":
                live.postgres.terminate_backends(live.application_name)
            else:
                live.postgres.restart("fast")
            events = stream.read_all()
        conversation_id = events[0][1]["conversation_id"]

        assert [name for name, _ in events][-2:] == ["sentiment", "done"]
        assert text_of(events) == FULL_TEXT
        reply = stored_reply(client, token, conversation_id)
        assert reply is not None
        assert (reply["status"], reply["content"]) == ("complete", FULL_TEXT)


def read_through_outage(live, client: httpx.Client, token: str, outage: float) -> tuple[list, str]:
    """Stop PostgreSQL after 3 chunks, start it `outage` seconds after the provider finished,
    and read the stream to its end meanwhile. Returns the events and the conversation id."""
    with open_stream(client, token, chat_body("Tell me something")) as stream:
        stream.read_until(chunks=3)
        live.postgres.stop("fast")
        try:
            stream.read_until(chunks=len(WORDS))  # the reply is complete: now Lia stores it
            time.sleep(outage)
        finally:
            live.postgres.start()
        events = stream.read_all()  # raises if the body is cut; the client timeout bounds a hang
    return events, events[0][1]["conversation_id"]


def test_database_down_when_the_reply_is_stored_ends_the_stream_cleanly(live):
    """PostgreSQL is down when the finished reply is to be stored: the client still gets a
    well-formed stream whose last event is `done` or `error`, never a cut body or a 5xx."""
    live.fake.script(chunks=WORDS, delay=0.05)
    lia = live.start()
    with lia.client(timeout=60) as client:
        token = register(client)
        events, _ = read_through_outage(live, client, token, outage=4.0)

    names = [name for name, _ in events]
    assert names[0] == "start"
    assert names[-1] in ("done", "error")
    assert names.count("done") + names.count("error") == 1
    if names[-1] == "error":
        assert set(events[-1][1]) == {"message"}
        assert "Traceback" not in events[-1][1]["message"]


def test_reply_finished_during_a_database_outage_is_stored_once_it_is_back(live):
    """RELIABILITY 28: saving the reply is retried (for up to 30 s), so a reply that finished
    while PostgreSQL was down for a few seconds is stored, complete, once it is back."""
    live.fake.script(chunks=WORDS, delay=0.05)
    lia = live.start()
    with lia.client(timeout=60) as client:
        token = register(client)
        events, conversation_id = read_through_outage(live, client, token, outage=4.0)
        assert [name for name, _ in events][-1] == "done"
        assert text_of(events) == FULL_TEXT

        def stored() -> dict | None:
            reply = stored_reply(client, token, conversation_id)
            return reply if reply and reply["status"] != "streaming" else None

        # `done` comes after the save: by now the reply is stored, or never will be.
        reply = wait_until(stored, timeout=5, interval=0.25, what="the reply stored")

    assert (reply["status"], reply["content"]) == ("complete", FULL_TEXT)
