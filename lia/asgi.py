"""ASGI entry point: `daphne lia.asgi:application`, `python -m lia.uvicorn_worker` (manage.py serve).

Django is set up before anything imports models (the order cookiecutter-django uses). Static
files (the admin's, /chat's, the API docs'; collected by `manage.py collectstatic` in the Docker
image, found where they lie otherwise) are served in front of Django by servestatic, without
entering the middleware stack. On shutdown (SIGTERM),
requests in flight end as if their client had gone away, so open chat streams store their
partial replies before the process exits (lia.shutdown).
Outermost, a request whose body is larger than MAX_REQUEST_BODY_BYTES gets the JSON 413
before Django reads it.
"""

import gc
import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import django
import structlog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lia.settings.base")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles import finders  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from lia import middleware  # noqa: E402
from lia.errors import body_too_large, error_body  # noqa: E402
from lia.handler import ASGIHandler  # noqa: E402
from lia.shutdown import SHUTDOWN_GRACE_SECONDS, GracefulShutdown  # noqa: E402

Scope = dict[str, Any]
REQUEST_ID_PATTERN = re.compile(middleware.REQUEST_ID_PATTERN.pattern.encode())  # the same ids, as bytes
logger = structlog.get_logger("lia.access")
server_logger = structlog.get_logger("lia.server")


class RequestBodyLimit:
    """Answer 413 to a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE without reading it.

    Django's ASGI handler reads (and spools to disk) the whole body before any middleware runs,
    so lia.middleware.BodySizeMiddleware alone can't stop a client from uploading 100 MB first. A
    declared Content-Length over the limit is refused before the first body byte is received; a
    body without one (chunked) is counted as it arrives and refused once it passes the limit;
    within it, the application gets it as one message with its Content-Length declared.
    (daphne itself buffers a body before calling the application: limit bodies at the reverse
    proxy too. SECURITY.md says how.) Outermost, it also refuses WebSocket handshakes: Lia
    serves none.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            return await _refuse_websocket(receive, send)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if scope["type"] != "http" or limit is None:
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                return await self._refuse(scope, send, limit)
            return await self.app(scope, receive, send)  # malformed lengths: Django answers 400
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away before sending its body
            size += len(message.get("body", b""))
            if size > limit:
                return await self._refuse(scope, send, limit)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return await self.app(*_with_buffered_body(scope, receive, b"".join(chunks)), send)

    @staticmethod
    async def _refuse(scope: Scope, send: Any, limit: int) -> None:
        body = json.dumps(error_body(body_too_large(limit)), separators=(",", ":")).encode()
        request_id = _header(scope, b"x-request-id")
        if not (request_id and REQUEST_ID_PATTERN.match(request_id)):
            request_id = uuid.uuid4().hex.encode()
        logger.warning(
            "security.body_too_large",
            method=scope.get("method"),
            path=scope.get("path"),
            declared=(_header(scope, b"content-length") or b"").decode("latin-1")[:20] or None,
            peer=(scope.get("client") or ("unknown",))[0],
            request_id=request_id.decode(),
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id),
            (b"connection", b"close"),
            *((name.lower().encode(), value.encode()) for name, value in hardening_header_items()),
        ]
        origin = _header(scope, b"origin")
        if origin is not None and origin.decode("latin-1") in settings.CORS_ALLOWED_ORIGINS:
            # What django-cors-headers adds for an allowed origin: the browser then shows the error.
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-expose-headers", ", ".join(settings.CORS_EXPOSE_HEADERS).encode()),
                (b"vary", b"origin"),
            ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive: Any, send: Any) -> None:
    """Lia serves no WebSocket: the handshake is refused (the server answers 403). Passed on,
    an upgrade request reached Django, which raised: a plain-text 500 and an ERROR with a
    traceback in the log for anyone's asking (found by a security audit)."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1000})


def _with_buffered_body(scope: Scope, receive: Any, body: bytes) -> tuple[Scope, Any]:
    """The scope and receive for a body read in full: one message, and its length declared.
    Django and DRF read a request without Content-Length as having no body at all."""
    if body:
        scope = {**scope, "headers": [*scope.get("headers", []), (b"content-length", str(len(body)).encode())]}
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> dict[str, Any]:
        return pending.pop() if pending else await receive()

    return scope, replay


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.strip()
    return None


def warm_up() -> None:
    """Load now, as the process starts, what the first requests would otherwise wait for: every
    view module (DRF, the serializers), the SDKs of the providers that can be called
    (`openai` and `google-genai` are ~0.4 s of imports each) and the sentiment analyzers. Without
    it every server process answered its first chat turn ~0.5 s late. A failure here is logged
    and left to the request that needs the part (it answers with its usual error)."""
    from django.urls import get_resolver

    from llm import preload_providers
    from sentiment import preload_analyzers

    started = time.monotonic()
    loaded: dict[str, Any] = {}
    for name, load in (
        ("urls", lambda: len(get_resolver().url_patterns)),
        ("providers", preload_providers),
        ("sentiment", preload_analyzers),
    ):
        try:
            loaded[name] = load()
        except Exception as exc:
            server_logger.warning("server.warm_up_failed", part=name, error=type(exc).__name__, detail=str(exc)[:200])
    loaded["gc_frozen"] = freeze_startup_objects()
    server_logger.info("server.warmed_up", ms=round((time.monotonic() - started) * 1000), **loaded)


def freeze_startup_objects() -> int:
    """Take what the process has loaded so far out of the garbage collector's sight; returns how
    many objects that is. A started process tracks ~190,000 objects (Django, DRF, the SDKs, their
    pydantic models), nearly all of them alive until it exits, and each full collection walked
    them all: 80-110 ms here, the whole process (every open stream on it) stopped, every few
    hundred requests. Frozen (`gc.freeze()`, after one collection so that no garbage is kept),
    they are no longer walked: a full collection then takes well under a millisecond. Objects
    that die later are still freed by their reference counts; only cycles among them would stay."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def hardening_header_items() -> list[tuple[str, str]]:
    """What Django's SecurityMiddleware and XFrameOptionsMiddleware add to the responses that pass
    through them, for those answered in front of them: static files and the 413 (found by a
    security audit: none of these headers were on them). HSTS goes out over plain HTTP too, where
    browsers ignore it (RFC 6797 §8.1)."""
    items = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", settings.X_FRAME_OPTIONS),
        ("Referrer-Policy", settings.SECURE_REFERRER_POLICY),
        ("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY),
    ]
    if settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        hsts += "; includeSubDomains" if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else ""
        hsts += "; preload" if settings.SECURE_HSTS_PRELOAD else ""
        items.append(("Strict-Transport-Security", hsts))
    return items


def hardening_headers(headers: Any, path: str, url: str) -> None:
    """servestatic's hook: set once per file, not per request."""
    for name, value in hardening_header_items():
        headers[name] = value


def with_static_files(app: Any) -> ServeStaticASGI:
    """`app` behind servestatic, serving the collected static files (STATIC_ROOT); or, where none
    were collected (`collectstatic` is the Docker image's step, not `manage.py serve`'s), each
    app's own, where Django's finders find them, the first found winning as in collectstatic
    (found by an audit: /chat and the API docs were blank pages under serve without it)."""
    if Path(settings.STATIC_ROOT).is_dir():
        return ServeStaticASGI(
            app, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL, add_headers_function=hardening_headers
        )
    served = ServeStaticASGI(app, prefix=settings.STATIC_URL, add_headers_function=hardening_headers)
    locations = list(
        dict.fromkeys(storage.location for finder in finders.get_finders() for _, storage in finder.list([]))
    )
    for location in reversed(locations):  # a later add_files replaces an earlier one's file
        served.add_files(location, prefix=settings.STATIC_URL)
    return served


# Django's handler, letting a chat stream's request thread go while it streams (lia.handler).
django_application = ASGIHandler()
application: Any = with_static_files(GracefulShutdown(django_application, grace=SHUTDOWN_GRACE_SECONDS))
application = RequestBodyLimit(application)


def _sweep_orphaned_replies() -> None:
    """At start-up, then every little while: replies a dead process left `streaming` (no
    `finally` runs under kill -9) are marked interrupted once their heartbeat is stale."""
    from django.db import connection

    from conversations.services import streaming_messages_sweep, sweep_interval

    while True:
        try:
            streaming_messages_sweep()
        except Exception as exc:  # the database may be down: try again next time
            logger.warning("chat.sweep.failed", error=type(exc).__name__)
        finally:
            connection.close()
        time.sleep(sweep_interval())


warm_up()

if settings.CHAT_SWEEP_IN_SERVER:
    threading.Thread(target=_sweep_orphaned_replies, name="lia-sweep", daemon=True).start()
