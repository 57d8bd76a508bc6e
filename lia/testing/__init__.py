"""Test support for the whole suite: throwaway PostgreSQL and Redis servers and Lia under a
real daphne (`lia.testing.servers`), and their pytest fixtures (`lia.testing.pytest_plugin`,
loaded through pytest.ini). Nothing here is imported by Lia itself."""
