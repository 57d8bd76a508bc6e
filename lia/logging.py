"""structlog through Django's LOGGING: JSON lines in production, readable lines in development.

Every line carries the context bound for the current request (request_id, user_id,
conversation_id). Values under keys that look like secrets are replaced before rendering,
as a last line of defence: code must not log message text, passwords, tokens or keys.
"""

import logging
from typing import Any

import structlog
from django.core.exceptions import ImproperlyConfigured

SECRET_KEYS = frozenset({"password", "token", "secret", "authorization", "cookie", "jwt"})
SECRET_SUFFIXES = ("_password", "_token", "_secret", "_key", "_cookie")

SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def redact_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in event_dict:
        lowered = key.lower()
        if lowered in SECRET_KEYS or lowered.endswith(SECRET_SUFFIXES):
            event_dict[key] = "[redacted]"
    return event_dict


class UncaughtExceptionsOnly(logging.Filter):
    """django.request logs every 4xx/5xx response, which the access line already records; keep
    only its reports of exceptions nothing handled (raised in middleware or outside DRF), so
    their traceback reaches the log, with the request id the 500 body shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None


class RefusedHostWarning(logging.Filter):
    """Django logs a request whose Host isn't allowed at ERROR with a traceback: a client's fault,
    answered 400, whose traceback says nothing about Lia, and scanners send such requests all day
    (found by an audit: 1.3 KB of traceback each). One warning line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


LOG_FORMATS = ("json", "dev")


def build_logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    if log_format not in LOG_FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT is {log_format!r}: use json or dev")
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ImproperlyConfigured(f"LOG_LEVEL is {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    level = level.upper()
    renderer: Any = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    redact_secrets,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": SHARED_PROCESSORS,
            },
        },
        "filters": {
            "uncaught_exceptions_only": {"()": "lia.logging.UncaughtExceptionsOnly"},
            "refused_host_warning": {"()": "lia.logging.RefusedHostWarning"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structlog"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Lia writes its own access line; these would duplicate it (but see the filter).
            "django.request": {"level": "ERROR", "filters": ["uncaught_exceptions_only"], "propagate": True},
            "django.server": {"level": "WARNING", "propagate": True},
            "django.security.DisallowedHost": {"filters": ["refused_host_warning"], "propagate": True},
            "daphne": {"level": "WARNING", "propagate": True},
            "uvicorn": {"level": "WARNING", "propagate": True},
            "django.channels.server": {"level": "ERROR", "propagate": True},
            "httpx": {"level": "WARNING", "propagate": True},
            # The LLM SDKs' HTTP client logs every request at INFO; llm logs its own events.
            "httpx2": {"level": "WARNING", "propagate": True},
        },
    }


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            # First: an event below its logger's level is dropped before the others run (a
            # timestamp formatted and the context merged for every debug line otherwise).
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
