from sentiment.testing.pytest_plugin import cloud_nl, cloud_nl_fake  # noqa: F401  (fixtures)
