"""One error shape everywhere (CONTRACT §4).

Every 4xx/5xx is `{"error": {"message": ..., "details"?: {...}}}`; validation errors (422)
also carry FastAPI's `detail` list, never echoing the submitted value. Domain exceptions
of the apps are mapped to statuses here, in one table.
"""

import math
from collections.abc import Iterator
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError, IntegrityError
from django.http import Http404, HttpRequest, JsonResponse
from psycopg_pool import PoolTimeout
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = structlog.get_logger("lia.errors")

INTERNAL_ERROR_MESSAGE = "An internal error occurred. Please try again later."
RATE_LIMITED_MESSAGE = "Rate limit exceeded. Please try again later."
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable. Please try again shortly."
UNAVAILABLE_RETRY_AFTER_SECONDS = 5

# DRF error codes → the short codes FastAPI clients saw in `detail[].type`.
VALIDATION_TYPES = {
    "required": "missing",
    "null": "missing",
    "blank": "string_too_short",
    "min_length": "string_too_short",
    "max_length": "string_too_long",
    "min_value": "greater_than_equal",
    "max_value": "less_than_equal",
    "parse_error": "json_invalid",
    "nul_character": "string_pattern_mismatch",
    "lone_surrogate": "string_unicode",
}


def error_body(message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if details:
        error["details"] = details
    return {"error": error}


def body_too_large(limit: int) -> str:
    """The 413's message, whichever layer refuses the body first (lia.asgi.RequestBodyLimit, then
    lia.middleware.BodySizeMiddleware; Django's own RequestDataTooBig, behind them, says the same)."""
    return f"Request body too large (limit {limit} bytes)"


def json_error(status: int, message: str, details: dict[str, Any] | None = None) -> JsonResponse:
    return JsonResponse(error_body(message, details), status=status)


def _flatten(detail: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """Yield (field path, message, code) for every leaf of a DRF error structure. A list item's
    index stays an integer, as in FastAPI's `loc`."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            key_path = (
                path if key in ("non_field_errors", "__all__") else (*path, key if isinstance(key, int) else str(key))
            )
            yield from _flatten(value, key_path)
    elif isinstance(detail, list):
        for item in detail:
            yield from _flatten(item, path)
    else:
        yield path, str(detail), getattr(detail, "code", None) or "value_error"


def validation_body(detail: Any, *, location: Any) -> dict[str, Any]:
    problems = list(_flatten(detail)) or [((), "Invalid request", "value_error")]
    errors, items = [], []
    for path, message, code in problems:
        field = ".".join(map(str, path)) if path else location(None)
        errors.append({"field": field, "message": message})
        items.append(
            {
                "type": VALIDATION_TYPES.get(code, code),
                "loc": [location(path[0] if path else None), *path],
                "msg": message,
            }
        )
    first_path, first_message, _ = problems[0]
    message = f"{'.'.join(map(str, first_path))}: {first_message}" if first_path else first_message
    return {
        "error": {"message": message, "details": {"errors": errors}},
        "detail": items,
    }


def _locator(context: dict[str, Any]) -> Any:
    """Where a field that failed validation came from: the URL's path, else the query string of
    a GET (the API's only query parameters are its GETs' paging), else the body. Not by looking
    the name up in the query string: a body field's error was placed in `query` whenever the URL
    also carried that name (`POST /register?email=x`)."""
    view = context.get("view")
    request = context.get("request")
    path_fields = set(getattr(view, "kwargs", None) or {})
    from_query = request is not None and request.method in ("GET", "HEAD")

    def location(field: str | None) -> str:
        if field in path_fields:
            return "path"
        return "query" if from_query else "body"

    return location


def _domain_status(exc: Exception) -> int | None:
    """The status for an app's own exception (the apps never raise HTTP errors)."""
    from accounts import exceptions as accounts
    from conversations import exceptions as conversations

    table: list[tuple[type[Exception], int]] = [
        (accounts.AccountRaceLost, 409),
        (accounts.AccountExists, 400),
        (accounts.InvalidCredentials, 401),
        (accounts.TokenRejected, 401),
        (accounts.SignInBusy, 503),
        (conversations.ConversationNotFound, 404),
        (conversations.NoMessageContent, 400),
        (conversations.TooManyStreams, 429),
        (conversations.TokenBudgetSpent, 429),
    ]
    for exc_type, status in table:
        if isinstance(exc, exc_type):
            return status
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error raised in an API view ends here."""
    headers: dict[str, str] = {}
    if isinstance(exc, drf.ValidationError):
        return Response(validation_body(exc.detail, location=_locator(context)), status=422)
    if isinstance(exc, drf.ParseError):
        body = validation_body(
            {"__all__": [drf.ErrorDetail("JSON decode error", code="parse_error")]},
            location=lambda _field: "body",
        )
        return Response(body, status=422)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)), status=413)
    if isinstance(exc, drf.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        return Response(
            error_body(RATE_LIMITED_MESSAGE, {"retry_after": wait}),
            status=429,
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
        message = "Authentication required" if isinstance(exc, drf.NotAuthenticated) else str(exc.detail)
        request = context.get("request")
        logger.info("auth.rejected", reason=message, path=getattr(request, "path", None))
        return Response(error_body(message), status=401, headers=headers)
    if isinstance(exc, Http404 | drf.NotFound):
        message = str(exc.detail) if isinstance(exc, drf.NotFound) else "Not Found"
        return Response(error_body(message), status=404)
    if isinstance(exc, drf.MethodNotAllowed):
        return Response(error_body("Method Not Allowed"), status=405)
    if isinstance(exc, drf.UnsupportedMediaType):
        return Response(error_body("Content-Type must be application/json"), status=415)
    if isinstance(exc, PermissionDenied | drf.PermissionDenied):
        return Response(error_body("You don't have permission to do this."), status=403)
    if isinstance(exc, drf.APIException):
        return Response(error_body(str(exc.detail)), status=exc.status_code)
    status = _domain_status(exc)
    if status is not None:
        details = None
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if status in (429, 503):
            wait = getattr(exc, "retry_after", 1)
            headers["Retry-After"] = str(wait)
            details = {"retry_after": wait} if status == 429 else None  # a 503's body as the database's
        return Response(error_body(str(exc), details), status=status, headers=headers)
    if isinstance(exc, DatabaseError | PoolTimeout) and not isinstance(exc, IntegrityError | DataError):
        # The database is down, restarting or out of pooled connections: a clean, retryable 503.
        logger.error("request.database_unavailable", error=type(exc).__name__)
        return Response(
            error_body(UNAVAILABLE_MESSAGE),
            status=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    logger.exception("request.unhandled_error")
    return Response(internal_error_body(), status=500)


def internal_error_body() -> dict[str, Any]:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return error_body(INTERNAL_ERROR_MESSAGE, {"request_id": request_id} if request_id else None)


# Django's handlers for errors raised outside DRF views (unknown URLs, middleware, admin).


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return json_error(413, body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    return json_error(400, "Bad Request")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(403, "You don't have permission to do this.")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """CSRF_FAILURE_VIEW: Django's CSRF check guards the admin's forms (the API uses the
    Origin check instead); its refusal is JSON like every other error."""
    logger.warning("security.csrf_rejected", reason=reason, path=request.path, method=request.method)
    return json_error(403, "CSRF verification failed. Reload the page and try again.")


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(404, "Not Found")


def handler500(request: HttpRequest) -> JsonResponse:
    return JsonResponse(internal_error_body(), status=500)
