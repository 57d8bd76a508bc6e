"""bench.floor, the bare proxy the benchmark's `--floor` serves, through the real OpenAI SDK
against the provider fake."""

import json

import pytest

from bench import floor


@pytest.fixture
def floor_client(fake_llm, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    floor.client.cache_clear()
    yield
    floor.client.cache_clear()


async def call(method: str, body: bytes = b"", app=floor.application) -> list[dict]:
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/api/v1/chat/stream", "headers": []}
    await app(scope, receive, send)
    return sent


def events(sent: list[dict]) -> list[tuple[str, dict]]:
    stream = b"".join(message.get("body", b"") for message in sent[1:]).decode()
    parsed = []
    for block in filter(None, stream.split("\n\n")):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        parsed.append((fields["event"], json.loads(fields["data"])))
    return parsed


async def test_a_post_streams_the_providers_text_deltas_as_chunk_events_then_done(fake_llm, floor_client):
    fake_llm.script(chunks=3, delay=0.0)

    sent = await call("POST", json.dumps({"message": "hello", "model": "gpt-4o-mini"}).encode())

    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    names = [name for name, _ in events(sent)]
    assert names == ["chunk", "chunk", "chunk", "done"]
    assert all(data["content"] for name, data in events(sent) if name == "chunk")
    assert sent[-1]["more_body"] is False
    assert fake_llm.last.body["messages"] == [{"role": "user", "content": "hello"}]
    assert fake_llm.last.body["stream"] is True


async def test_anything_but_a_post_is_the_readiness_probe(floor_client):
    sent = await call("GET")

    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"status": "ok"}


@pytest.fixture
async def floor_database(postgres_server, monkeypatch):
    """A database of its own on the throwaway cluster, as the benchmark's DATABASE_URL; the
    floor's pool is closed after the test."""
    name = "bench_floor_test"
    postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}"')
    monkeypatch.setenv("DATABASE_URL", postgres_server.create_database(name))
    monkeypatch.setattr(floor, "_pool", None)
    yield lambda sql: postgres_server.execute(sql, dbname=name)
    if floor._pool is not None:
        await floor._pool.close()


@pytest.mark.faults  # the throwaway cluster: once per CI run
async def test_the_durable_floor_reads_the_user_and_commits_the_message_before_it_streams(
    fake_llm, floor_client, floor_database
):
    fake_llm.script(chunks=2, delay=0.0)

    first = await call("POST", json.dumps({"message": "stored first"}).encode(), app=floor.durable_application)
    second = await call("POST", json.dumps({"message": "and again"}).encode(), app=floor.durable_application)

    assert [name for name, _ in events(first)] == [name for name, _ in events(second)] == ["chunk", "chunk", "done"]
    assert floor_database("SELECT user_id, content FROM bench_floor_message ORDER BY id") == [
        (1, "stored first"),
        (1, "and again"),
    ]
    assert fake_llm.last.body["messages"] == [{"role": "user", "content": "and again"}]
