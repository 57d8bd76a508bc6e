"""The middleware stack under ASGI (lia.middleware): Django's own middleware run inline, or on the
admin's paths only, so an API request costs no thread hop per hook, and still does their job."""

import pytest
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

from lia.middleware import AdminOnly
from lia.tests.asgi import asgi_request

pytestmark = pytest.mark.django_db(transaction=True)


async def _get_response(request):
    raise AssertionError("not called")


@pytest.mark.parametrize("path", settings.MIDDLEWARE)
def test_no_middleware_hops_to_a_thread_on_api_paths(path):
    """A Django middleware added later would send every request (and a chat stream's first
    byte) through a thread twice: wrap it (lia.middleware.Inline or AdminOnly) or write it
    async-native."""
    middleware = import_string(path)(_get_response)

    hops = getattr(type(middleware), "__acall__", None) is MiddlewareMixin.__acall__
    assert not hops or isinstance(middleware, AdminOnly)


async def test_api_responses_carry_the_security_headers_on_the_async_path(settings):
    settings.SECURE_HSTS_SECONDS = 3600

    status, headers, _ = await asgi_request(
        ASGIHandler(), "GET", "/health/live", headers=[(b"x-forwarded-proto", b"https")]
    )

    assert status == 200
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"referrer-policy"] == b"same-origin"
    assert headers[b"content-length"] == b"%d" % len(_)


async def test_api_requests_get_no_session():
    status, headers, _ = await asgi_request(ASGIHandler(), "GET", "/api/v1/chat/models")

    assert status == 200
    assert b"set-cookie" not in headers
    assert b"vary" not in headers or b"cookie" not in headers[b"vary"].lower()


async def test_the_admin_still_has_sessions_and_csrf():
    status, headers, body = await asgi_request(ASGIHandler(), "GET", "/admin/login/")

    assert status == 200
    assert b"csrftoken=" in headers[b"set-cookie"]
    assert b"csrfmiddlewaretoken" in body


async def test_an_admin_post_without_the_csrf_token_is_refused():
    status, _, body = await asgi_request(
        ASGIHandler(),
        "POST",
        "/admin/login/",
        headers=[(b"content-type", b"application/x-www-form-urlencoded")],
        body=b"username=a&password=b",
    )

    assert status == 403
    assert b"CSRF verification failed" in body


async def test_a_wrong_method_is_405_on_the_async_path_too():
    status, headers, body = await asgi_request(ASGIHandler(), "POST", "/api/v1/chat/history")

    assert status == 405
    assert headers[b"allow"] == b"GET, HEAD, OPTIONS"
    assert body == b'{"error": {"message": "Method Not Allowed"}}'
