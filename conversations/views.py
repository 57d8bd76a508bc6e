"""The built-in chat page: a small client of the public API, so a fresh install can be used
(and demonstrated) in a browser with nothing else running."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


async def chat_page(request: HttpRequest) -> HttpResponse:
    """GET /chat (wrapped in lia.urls so other methods get the JSON 405)."""
    response = render(request, "chat/index.html")
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    response["Cache-Control"] = "no-store"
    return response
