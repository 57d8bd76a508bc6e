"""Test support shared by the whole suite: wire-level fakes of the OpenAI and Gemini APIs.

The pytest fixtures (`fake_llm_server`, `fake_llm`, `fake_llm_providers`) live in
`llm.testing.pytest_plugin`, loaded for every test through pytest.ini. The control API is in
the docstring of `llm.testing.fake_server`.
"""

from llm.testing.fake_server import FakeLLMServer, Recorded, Script

__all__ = ["FakeLLMServer", "Recorded", "Script"]
