from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.ratelimit import rate_limit_check
from health.views import get_only, now_iso
from lia.errors import RATE_LIMITED_MESSAGE, error_body


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
    """The admin's login form, under the same per-IP limit as the API's login and register:
    staff passwords are no easier to guess than anyone's."""
    if request.method == "POST":
        decision = rate_limit_check(
            scope="auth",
            key=getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR", ""),
            limit=settings.RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE,
        )
        if not decision.allowed:
            response = JsonResponse(error_body(RATE_LIMITED_MESSAGE, {"retry_after": decision.retry_after}), status=429)
            response["Retry-After"] = str(decision.retry_after)
            return response
    return admin.site.login(request, extra_context)
