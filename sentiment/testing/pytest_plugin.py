"""pytest fixtures for the Cloud Natural Language fake.

Other test packages load them with `pytest_plugins = ["sentiment.testing.pytest_plugin"]` in
the root conftest.py (or `-p sentiment.testing.pytest_plugin`).

- `cloud_nl_fake`: a running FakeCloudNL, stopped after the test; settings untouched.
"""

from collections.abc import Iterator

import pytest

from sentiment.testing.fake_cloud_nl import FakeCloudNL


@pytest.fixture
def cloud_nl_fake() -> Iterator[FakeCloudNL]:
    with FakeCloudNL() as fake:
        yield fake
