"""Project middleware. Each one is async-native (and sync-capable), so the ASGI stack runs
without a thread hop per request: the chat stream's latency depends on it.

Django's own middleware (MiddlewareMixin) sends each hook to a thread and back under ASGI, two
hops per middleware per request. So the ones whose hooks only read the request and set headers
run inline here (`Inline`), and the ones only the admin needs (sessions, the admin's user,
messages) run on the admin's paths only (`AdminOnly`). CsrfViewMiddleware is not installed: the
API uses the Origin check below (CONTRACT §3.6), and every admin view carries Django's
`csrf_protect` itself.
"""

import functools
import ipaddress
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, security
from rest_framework.views import APIView

from lia.errors import body_too_large, json_error

logger = structlog.get_logger("lia.access")

Handler = Callable[[HttpRequest], Any]
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADMIN_PATH_PREFIX = "/admin/"


class Middleware:
    """Base for middleware that runs the same logic on the sync and async paths."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        early = self.before(request)
        if early is not None:
            return self.after(request, early)
        return self.after(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        early = self.before(request)
        if early is not None:
            return self.after(request, early)
        response = await self.get_response(request)
        return self.after(request, response)

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response


def client_ip(request: HttpRequest) -> str:
    """The client's address: the socket peer, or the entry TRUSTED_PROXY_COUNT hops back in
    X-Forwarded-For when Lia runs behind that many trusted proxies (CONTRACT §11 W6)."""
    peer = request.META.get("REMOTE_ADDR") or "unknown"
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return peer
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < hops:
        return peer
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


class RequestContextMiddleware(Middleware):
    """Request id (accepted from X-Request-ID or generated, echoed back), the client IP, and
    one access-log line per request with method, path, status and duration."""

    def before(self, request: HttpRequest) -> None:
        structlog.contextvars.clear_contextvars()
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        address = client_ip(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        request.client_ip = address  # type: ignore[attr-defined]
        request.started_at = time.perf_counter()  # type: ignore[attr-defined]
        # Every log line of the request carries both (security events need the client's address).
        structlog.contextvars.bind_contextvars(request_id=request_id, client_ip=address)

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        context = structlog.contextvars.get_contextvars()
        logger.info(
            "http.request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - request.started_at) * 1000, 2),  # type: ignore[attr-defined]
            user_id=context.get("user_id"),
            streaming=response.streaming or None,
        )
        return response


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 host is no origin at all
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class OriginCheckMiddleware(Middleware):
    """CSRF defence for cookie auth without tokens (CONTRACT §3.6): an unsafe request whose
    Origin (or, failing that, Referer) is neither an allowed CORS origin nor Lia's own is 403.
    Requests with neither header (non-browser API clients) pass."""

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        if request.method not in UNSAFE_METHODS:
            return None
        origin = request.headers.get("Origin")
        if origin is None:
            referer = request.headers.get("Referer")
            if referer is None:
                return None
            origin = _origin_of(referer) or "null"
        if self._allowed(request, origin.lower()):
            return None
        logger.warning("security.origin_rejected", origin=origin[:200], path=request.path)
        return json_error(403, "Origin not allowed")

    @staticmethod
    def _allowed(request: HttpRequest, origin: str) -> bool:
        if origin in {allowed.lower() for allowed in settings.CORS_ORIGINS}:
            return True
        try:
            own = f"{request.scheme}://{request.get_host()}".lower()
        except DisallowedHost:
            return False
        return origin == own


class BodySizeMiddleware(Middleware):
    """A declared body larger than DATA_UPLOAD_MAX_MEMORY_SIZE gets a JSON 413 before any
    view parses it."""

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error(400, "Invalid Content-Length header")
        if limit is not None and declared > limit:
            return json_error(413, body_too_large(limit))
        return None


class MethodCheckMiddleware(Middleware):
    """A method an API view doesn't handle is 405 whoever asks, as the FastAPI backend's routing
    by method answered (CONTRACT §4.1): DRF authenticates first, so an anonymous request got 401
    (found by a contract audit). The view is known once the URL is resolved, so this is a
    `process_view` hook, in the mode of the stack (no thread hop)."""

    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        self.process_view = self._process_view_async if self.is_async else self._process_view

    def _process_view(self, request: HttpRequest, view: Any, *_: Any) -> HttpResponseBase | None:
        view_class = getattr(view, "cls", None)  # DRF's as_view() sets it
        if not (isinstance(view_class, type) and issubclass(view_class, APIView)):
            return None
        allowed = _allowed_methods(view_class)
        if request.method in allowed:
            return None
        response = json_error(405, "Method Not Allowed")
        response["Allow"] = ", ".join(allowed)
        return response

    async def _process_view_async(self, request: HttpRequest, view: Any, *rest: Any) -> HttpResponseBase | None:
        return self._process_view(request, view, *rest)


@functools.cache
def _allowed_methods(view_class: type[APIView]) -> tuple[str, ...]:
    """What DRF's `allowed_methods` says of the view (HEAD wherever GET is)."""
    return tuple(
        method.upper()
        for method in view_class.http_method_names
        if hasattr(view_class, method) or (method == "head" and hasattr(view_class, "get"))
    )


class Inline:
    """For a Django middleware whose hooks do no I/O: on the async path they run on the event
    loop, not in a thread (MiddlewareMixin's __acall__ hops to one for each hook)."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        return self.process_response(request, response) if hasattr(self, "process_response") else response


class SecurityMiddleware(Inline, security.SecurityMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Django's, and `no-store` on an answer to a request with credentials (the auth cookie
        or an Authorization header) that says nothing of caching itself: it is one user's (their
        email, their conversations), and a shared cache (a CDN told to cache the API, a proxy)
        must not keep it for the next caller (found by a security audit)."""
        response = super().process_response(request, response)
        if "Cache-Control" not in response and (
            "HTTP_AUTHORIZATION" in request.META or settings.COOKIE_NAME in request.COOKIES
        ):
            response["Cache-Control"] = "no-store"
        return response


# The platform's health probes: they name the server by its address (Kubernetes sends the pod's
# IP as Host), not by a name the API is served under, and their answers hold no URL to poison.
PROBE_PATHS = frozenset({"/health", "/health/live", "/health/ready"})


class CommonMiddleware(Inline, common.CommonMiddleware):
    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        """Django's, which validates the Host against ALLOWED_HOSTS, except for the probes."""
        if request.path_info in PROBE_PATHS:
            return None
        return super().process_request(request)


class XFrameOptionsMiddleware(Inline, clickjacking.XFrameOptionsMiddleware):
    pass


class AdminOnly:
    """For a Django middleware only the admin needs: every other path skips it."""

    def __call__(self, request: HttpRequest) -> Any:
        if not request.path_info.startswith(ADMIN_PATH_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(AdminOnly, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(AdminOnly, auth.AuthenticationMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        """Django's, then the signed-in staff member's id bound to the request's log lines, as
        the API's authentication binds a token's: what staff do in the admin (ending sessions,
        deactivating a user) names who did it."""
        super().process_request(request)
        if request.user.is_authenticated:
            structlog.contextvars.bind_contextvars(user_id=request.user.pk)


class MessageMiddleware(AdminOnly, messages.MessageMiddleware):
    pass
