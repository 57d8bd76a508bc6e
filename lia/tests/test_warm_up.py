"""A server process loads, as it starts, what its first chat turn would otherwise wait for
(issue #8: the first turn of every process took ~0.5 s, most of it importing the provider SDK)."""

import json
import logging
import secrets
import subprocess
import sys

from lia.asgi import warm_up
from lia.testing.servers import BASE_DIR, live_environment

LOADED = """
import gc, json, sys
import lia.asgi
from llm.registry import _instances
from sentiment.analyzers import local
print(json.dumps({
    "modules": sorted(m for m in ("openai", "google.genai", "conversations.apis") if m in sys.modules),
    "providers": sorted(_instances),
    "lexicon": local._analyzer.cache_info().currsize,
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
}))
"""


def test_importing_the_asgi_application_loads_sdks_views_and_the_lexicon(tmp_path):
    # Empty values also win over a developer's .env file.
    environment = live_environment(
        {
            "DJANGO_SETTINGS_MODULE": "lia.settings.base",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "JWT_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "CHAT_SWEEP_IN_SERVER": "false",
            "OPENAI_API_KEY": "sk-production-key",
            "GEMINI_API_KEY": "",  # gemini has none: not built, its SDK not imported
            "LLM_COMPATIBLE_PROVIDERS": "",
            "GOOGLE_NL_API_ENDPOINT": "",
            "GOOGLE_NL_API_KEY": "",
            "GOOGLE_APPLICATION_CREDENTIALS": "",
            "LOG_LEVEL": "INFO",
        }
    )
    completed = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", LOADED],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    loaded = json.loads(completed.stdout.splitlines()[-1])
    frozen, tracked = loaded.pop("frozen"), loaded.pop("tracked")
    assert loaded == {"modules": ["conversations.apis", "openai"], "providers": ["offline", "openai"], "lexicon": 1}
    # What was loaded is out of the collector's sight: a full collection walks only what came after.
    assert frozen > 100_000
    assert tracked < frozen / 20
    warmed_up = next(json.loads(line) for line in completed.stderr.splitlines() if "server.warmed_up" in line)
    assert warmed_up["gc_frozen"] > 100_000


def test_a_part_that_fails_to_load_is_logged_and_the_rest_still_loads(fake_llm_providers, settings, caplog):
    settings.GOOGLE_NL_API_ENDPOINT = settings.GOOGLE_NL_API_KEY = ""
    settings.GOOGLE_APPLICATION_CREDENTIALS = "/nonexistent/credentials.json"
    caplog.set_level(logging.INFO, logger="lia.server")

    warm_up()  # does not raise

    events = {r.msg["event"]: r.msg for r in caplog.records if r.name == "lia.server"}
    failed = events["server.warm_up_failed"]
    assert (failed["part"], failed["error"]) == ("sentiment", "DefaultCredentialsError")
    assert events["server.warmed_up"]["providers"] == ["gemini", "openai", "compat", "offline"]
    assert events["server.warmed_up"]["urls"] > 0
    assert events["server.warmed_up"]["gc_frozen"] > 0
