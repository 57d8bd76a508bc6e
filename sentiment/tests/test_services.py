import asyncio
import logging

import pytest

from sentiment import DEFAULT_METHOD, LOCAL_METHOD, METHODS, analyze_message, preload_analyzers
from sentiment.analyzers import local, nlp_api


def test_methods_list_the_contract_ids_first_then_local():
    assert METHODS == ["nlp_api", "llm_separate", "structured", "local"]
    assert DEFAULT_METHOD == "llm_separate"
    assert LOCAL_METHOD == "local"


async def test_an_unknown_method_gives_the_marked_neutral_result():
    result = await analyze_message(method="telepathy", text="I love it")

    assert result.to_stored() == {
        "score": 0.0,
        "label": "Neutral",
        "emotion": "neutral",
        "source": "default",
        "details": {"error": "unknown_method"},
    }


async def test_a_blank_message_is_not_sent_anywhere():
    async def llm_json(system, text, schema):
        raise AssertionError("no call expected")

    result = await analyze_message(method="llm_separate", text="  \n", llm_json=llm_json)

    assert result.details == {"error": "empty"}


async def test_llm_methods_without_an_llm_call_use_the_local_analyzer():
    for method in ("llm_separate", "structured"):
        result = await analyze_message(method=method, text="I love this, it is great!", llm_json=None)

        assert (result.label, result.source) == ("Positive", "local")


async def test_a_failure_is_logged_without_the_message_text(caplog):
    secret_text = "my very private confession about being happy"

    async def llm_json(system, text, schema):
        raise ConnectionError("provider down")

    with caplog.at_level(logging.WARNING):
        result = await analyze_message(method="llm_separate", text=secret_text, llm_json=llm_json)

    assert result.details == {"error": "error"}
    events = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    assert any(e["event"] == "sentiment.failed" and e["method"] == "llm_separate" for e in events)
    assert "confession" not in caplog.text


async def test_a_slow_analyzer_is_cut_off_by_the_timeout():
    async def llm_json(system, text, schema):
        await asyncio.sleep(30)
        return {"score": 1}

    async with asyncio.timeout(10):  # the test itself must not hang
        result = await analyze_message(method="llm_separate", text="hello", llm_json=llm_json, timeout=0.1)

    assert result.details == {"error": "timeout"}
    assert (result.score, result.label, result.emotion, result.source) == (0.0, "Neutral", "neutral", "default")


async def test_cancellation_is_not_swallowed():
    started = asyncio.Event()

    async def llm_json(system, text, schema):
        started.set()
        await asyncio.sleep(30)
        return {}

    task = asyncio.create_task(analyze_message(method="llm_separate", text="hello", llm_json=llm_json))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


def test_preloading_loads_the_local_lexicon_and_a_configured_cloud_client(cloud_nl):
    local._analyzer.cache_clear()
    nlp_api.reset_clients()

    assert preload_analyzers() == ["local", "nlp_api"]

    assert local._analyzer.cache_info().currsize == 1
    assert nlp_api._build_client.cache_info().currsize == 1


def test_preloading_leaves_an_unconfigured_cloud_client_alone(settings):
    settings.GOOGLE_NL_API_ENDPOINT = settings.GOOGLE_NL_API_KEY = settings.GOOGLE_APPLICATION_CREDENTIALS = ""
    nlp_api.reset_clients()

    assert preload_analyzers() == ["local"]
    assert nlp_api._build_client.cache_info().currsize == 0
