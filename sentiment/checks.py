"""System checks for the sentiment settings (run at start-up and by `manage.py check`)."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from sentiment.analyzers.nlp_api import VERSIONS


@register()
def check_sentiment_settings(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    if settings.GOOGLE_NL_API_VERSION not in VERSIONS:
        problems.append(Error("GOOGLE_NL_API_VERSION must be v1 or v2.", id="sentiment.E001"))
    if settings.SENTIMENT_TIMEOUT <= 0 or settings.GOOGLE_NL_API_TIMEOUT <= 0:
        problems.append(Error("SENTIMENT_TIMEOUT and GOOGLE_NL_API_TIMEOUT must be positive.", id="sentiment.E002"))
    credentials = settings.GOOGLE_APPLICATION_CREDENTIALS
    if credentials and not Path(credentials).is_file():
        problems.append(
            Warning(
                "GOOGLE_APPLICATION_CREDENTIALS does not name a readable file.",
                hint="Method nlp_api will answer the neutral fallback until it does.",
                id="sentiment.W001",
            )
        )
    if settings.GOOGLE_NL_API_KEY and credentials:
        problems.append(
            Warning(
                "Both GOOGLE_NL_API_KEY and GOOGLE_APPLICATION_CREDENTIALS are set; the API key is used.",
                id="sentiment.W002",
            )
        )
    return problems
