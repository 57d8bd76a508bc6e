"""Method `nlp_api`: Google Cloud Natural Language `analyzeSentiment` (CONTRACT §9.8).

The client library's REST transport is synchronous, so calls run in a small dedicated thread
pool (a stalled call can't starve the event loop's default executor). One client per process
and configuration. Every call passes an explicit per-attempt `timeout=` and a bounded
`retry=`: the library's defaults are a 600 s timeout and 600 s of retries.

Configured = any of GOOGLE_NL_API_KEY, GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_NL_API_ENDPOINT.
With only an endpoint the client calls it anonymously (a local fake or an authenticating
proxy). The credentials file may hold a service-account key or authorized-user credentials.
Nothing here ever falls back to Google's ambient credential discovery, which would
probe the GCE metadata server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from django.conf import settings

from sentiment.exceptions import (
    AnalyzerAuthFailed,
    AnalyzerRateLimited,
    AnalyzerUnavailable,
    InvalidAnalyzerResponse,
    SentimentError,
)
from sentiment.normalize import label_for_score, normalize_score
from sentiment.types import NEUTRAL, Sentiment

if TYPE_CHECKING:
    from google.cloud.language_v2 import LanguageServiceClient

SOURCE = "nlp_api"
SERVICE = "google_cloud_natural_language"
NOT_CONFIGURED_ERROR = "Google Cloud NLP not configured"
VERSIONS = ("v1", "v2")
AUTH_SCOPES = ("https://www.googleapis.com/auth/cloud-language", "https://www.googleapis.com/auth/cloud-platform")
MAX_CONCURRENT_CALLS = 8

_executor = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_CALLS, thread_name_prefix="sentiment-nl")
_client_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class CloudNLConfig:
    endpoint: str = ""
    api_key: str = ""
    credentials_file: str = ""
    version: str = "v2"
    timeout: float = 5.0
    retry_timeout: float = 8.0

    @classmethod
    def from_settings(cls) -> CloudNLConfig:
        return cls(
            endpoint=settings.GOOGLE_NL_API_ENDPOINT,
            api_key=settings.GOOGLE_NL_API_KEY,
            credentials_file=settings.GOOGLE_APPLICATION_CREDENTIALS,
            version=settings.GOOGLE_NL_API_VERSION,
            timeout=settings.GOOGLE_NL_API_TIMEOUT,
            retry_timeout=settings.GOOGLE_NL_API_RETRY_TIMEOUT,
        )

    @property
    def configured(self) -> bool:
        return bool(self.endpoint or self.api_key or self.credentials_file)


def not_configured_result() -> Sentiment:
    """CONTRACT §9.8: Neutral 0.0, emotion `neutral`, details.error as below."""
    return Sentiment(
        score=0.0, label=NEUTRAL, emotion="neutral", source="default", details={"error": NOT_CONFIGURED_ERROR}
    )


def _language_module(version: str) -> Any:
    if version == "v1":
        from google.cloud import language_v1

        return language_v1
    from google.cloud import language_v2

    return language_v2


def _load_credentials(path: str) -> Any:
    """Service-account or user credentials from a key file, by their specific loaders.

    Loaded here because the REST transport ignores client_options.credentials_file and would
    fall back to ambient discovery. Service accounts then sign their own JWTs.
    """
    from google.auth.exceptions import DefaultCredentialsError
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
        kind = info.get("type") if isinstance(info, dict) else None
        if kind == "service_account":
            return service_account.Credentials.from_service_account_info(info, scopes=AUTH_SCOPES)
        if kind == "authorized_user":
            return user_credentials.Credentials.from_authorized_user_info(info, scopes=AUTH_SCOPES)
    except (OSError, ValueError) as error:
        raise DefaultCredentialsError(f"unreadable credentials file: {type(error).__name__}") from None
    raise DefaultCredentialsError(f"unsupported credentials type {kind!r}")


@functools.lru_cache(maxsize=4)
def _build_client(endpoint: str, api_key: str, credentials_file: str, version: str) -> LanguageServiceClient:
    from google.auth.credentials import AnonymousCredentials

    options: dict[str, str] = {}
    credentials: Any = None
    if endpoint:
        options["api_endpoint"] = endpoint  # an http:// scheme is kept by the REST transport
    if api_key:
        options["api_key"] = api_key
    elif credentials_file:
        credentials = _load_credentials(credentials_file)
    else:
        credentials = AnonymousCredentials()
    module = _language_module(version)
    return module.LanguageServiceClient(transport="rest", credentials=credentials, client_options=options)


def get_client(config: CloudNLConfig) -> LanguageServiceClient:
    """The process-wide client for this configuration (created on first use)."""
    with _client_lock:
        return _build_client(config.endpoint, config.api_key, config.credentials_file, config.version)


def reset_clients() -> None:
    """Forget the cached clients (tests that change settings; a rotated key)."""
    with _client_lock:
        _build_client.cache_clear()


def _retry(config: CloudNLConfig) -> Any:
    from google.api_core import exceptions as core_exceptions
    from google.api_core.retry import Retry, if_exception_type

    return Retry(
        initial=0.2,
        maximum=1.0,
        multiplier=2.0,
        timeout=config.retry_timeout,
        predicate=if_exception_type(core_exceptions.ServiceUnavailable, core_exceptions.GatewayTimeout),
    )


def _translate(error: Exception) -> SentimentError:
    """Vendor and transport errors as this app's exceptions (reason codes are user-safe)."""
    from google.api_core import exceptions as core_exceptions
    from google.auth.exceptions import GoogleAuthError
    from google.protobuf.json_format import ParseError

    if isinstance(error, GoogleAuthError):  # an unreadable credentials file, a refused refresh
        return AnalyzerAuthFailed(f"Cloud NL credentials: {type(error).__name__}")
    if isinstance(error, core_exceptions.TooManyRequests):
        return AnalyzerRateLimited(f"Cloud NL {error.code}")
    if isinstance(error, core_exceptions.BadRequest):  # e.g. a language it can't rate
        return SentimentError(f"Cloud NL {error.code}", reason="rejected")
    if isinstance(error, core_exceptions.Unauthorized | core_exceptions.Forbidden):
        return AnalyzerAuthFailed(f"Cloud NL {error.code}")
    if isinstance(error, core_exceptions.GatewayTimeout | requests.Timeout):
        return SentimentError("Cloud NL timed out", reason="timeout")
    if isinstance(error, core_exceptions.RetryError):
        return AnalyzerUnavailable("Cloud NL retries exhausted")
    if isinstance(error, core_exceptions.GoogleAPICallError):
        return AnalyzerUnavailable(f"Cloud NL {error.code}")
    if isinstance(error, requests.RequestException | OSError):
        return AnalyzerUnavailable(f"Cloud NL transport: {type(error).__name__}")
    if isinstance(error, ParseError | ValueError):  # a body the client library could not read
        return InvalidAnalyzerResponse("Cloud NL answered an unreadable body")
    return SentimentError(f"Cloud NL: {type(error).__name__}")


def _analyze_blocking(config: CloudNLConfig, text: str) -> tuple[float, float]:
    module = _language_module(config.version)
    try:
        response = get_client(config).analyze_sentiment(
            document={"content": text, "type_": module.Document.Type.PLAIN_TEXT},
            encoding_type=module.EncodingType.UTF8,
            retry=_retry(config),
            timeout=config.timeout,
        )
    except Exception as error:
        raise _translate(error) from error
    return response.document_sentiment.score, response.document_sentiment.magnitude


def to_sentiment(score: float, magnitude: float) -> Sentiment:
    """Score as the message score, the label from it, no emotion, magnitude in details."""
    normalized = normalize_score(score) or 0.0
    return Sentiment(
        score=normalized,
        label=label_for_score(normalized),
        emotion=None,
        source=SOURCE,
        details={"magnitude": round(max(0.0, float(magnitude)), 4), "service": SERVICE},
    )


async def analyze(text: str, *, config: CloudNLConfig | None = None) -> Sentiment:
    config = config or CloudNLConfig.from_settings()
    if not config.configured:
        return not_configured_result()
    loop = asyncio.get_running_loop()
    score, magnitude = await loop.run_in_executor(_executor, _analyze_blocking, config, text)
    return to_sentiment(score, magnitude)
