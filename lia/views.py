from django.conf import settings
from django.http import HttpRequest, JsonResponse

from health.views import get_only, now_iso


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
            "chat": "/chat",
        }
    )
