"""pytest fixtures for the LLM fakes, loaded for the whole suite (pytest.ini: -p llm.testing.pytest_plugin).

* `fake_llm_server` (session): one started FakeLLMServer for the run.
* `fake_llm`: the same server, reset (script, queued failures, recorded requests) for this test.
* `fake_llm_providers`: `fake_llm`, with settings.LLM_PROVIDERS pointing gemini, openai and an
  OpenAI-compatible "compat" provider at it (keys "g-fake" / "sk-fake"), so `resolve_provider`
  returns the real adapters over the real SDKs. Restored after the test.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from llm.testing.fake_server import FakeLLMServer


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture
def fake_llm_providers(fake_llm: FakeLLMServer, settings: Any) -> FakeLLMServer:
    settings.LLM_PROVIDERS = fake_llm.provider_settings()
    return fake_llm
