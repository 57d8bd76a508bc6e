"""pytest fixtures for the Cloud Natural Language fake.

Other test packages load them with `pytest_plugins = ["sentiment.testing.pytest_plugin"]` in
the root conftest.py (or `-p sentiment.testing.pytest_plugin`).

- `cloud_nl_fake`: a running FakeCloudNL, stopped after the test; settings untouched.
- `cloud_nl`: the same fake with settings pointing method `nlp_api` at it (anonymous
  credentials, short timeouts); needs pytest-django's `settings` fixture.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from sentiment.testing.fake_cloud_nl import FakeCloudNL


@pytest.fixture
def cloud_nl_fake() -> Iterator[FakeCloudNL]:
    with FakeCloudNL() as fake:
        yield fake


@pytest.fixture
def cloud_nl(cloud_nl_fake: FakeCloudNL, settings: Any) -> Iterator[FakeCloudNL]:
    from sentiment.analyzers.nlp_api import reset_clients

    settings.GOOGLE_NL_API_ENDPOINT = cloud_nl_fake.endpoint
    settings.GOOGLE_NL_API_KEY = ""
    settings.GOOGLE_APPLICATION_CREDENTIALS = ""
    settings.GOOGLE_NL_API_TIMEOUT = 2.0
    settings.GOOGLE_NL_API_RETRY_TIMEOUT = 3.0
    yield cloud_nl_fake
    reset_clients()
