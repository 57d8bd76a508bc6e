from hypothesis import settings

from sentiment.testing.pytest_plugin import cloud_nl, cloud_nl_fake  # noqa: F401  (fixtures)

# No example database on disk; no per-example deadline (CI machines are small and shared).
settings.register_profile("lia", database=None, deadline=None)
settings.load_profile("lia")
