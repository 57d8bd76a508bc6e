import structlog
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.limits import login_failure_reserve, sign_in_attempt
from accounts.ratelimit import rate_limit_refund
from health.views import get_only, now_iso
from lia.errors import RATE_LIMITED_MESSAGE, error_body

logger = structlog.get_logger("lia.accounts")


@get_only
async def root(request: HttpRequest) -> JsonResponse:
    """GET /: what this server is (the FastAPI backend's optional root, CONTRACT §8.4)."""
    return JsonResponse(
        {
            "name": "Lia",
            "version": settings.VERSION,
            "status": "healthy",
            "environment": "development" if settings.DEBUG else "production",
            "timestamp": now_iso(),
            "documentation": "/api/v1/docs",
            "chat": "/chat",
        }
    )


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The admin's login form, under the API's limits on signing in (accounts.limits): the same
    per-address counter as login and register, and the same failed-password lock per account,
    so staff passwords are no easier to guess than anyone's, and a locked account is locked
    here too."""
    if request.method != "POST":
        return admin.site.login(request, extra_context)
    attempt = sign_in_attempt(request)
    if not attempt.allowed:
        return too_many_attempts(attempt.retry_after)
    email, password = request.POST.get("username", ""), request.POST.get("password", "")
    if not (email and password):  # nothing to check: the form says what is missing
        return admin.site.login(request, extra_context)
    failure = login_failure_reserve(email)
    if not failure.allowed:
        return too_many_attempts(failure.retry_after)
    try:
        response = admin.site.login(request, extra_context)
    except BaseException:
        rate_limit_refund(failure)
        raise
    if response.status_code == 302:  # signed in: the form redirects only then
        rate_limit_refund(failure)
        logger.info("auth.login", user_id=request.user.pk, via="admin")
    elif response.status_code == 200:  # the form again: the credentials were wrong
        logger.info("auth.login_failed", via="admin")
    else:  # refused before the password was checked (the CSRF check)
        rate_limit_refund(failure)
    return response


def too_many_attempts(retry_after: int) -> JsonResponse:
    response = JsonResponse(error_body(RATE_LIMITED_MESSAGE, {"retry_after": retry_after}), status=429)
    response["Retry-After"] = str(retry_after)
    return response
