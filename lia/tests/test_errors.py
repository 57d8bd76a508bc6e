"""One JSON error shape everywhere (CONTRACT §4, §13): no HTML, no redirects, no stack traces."""

import codecs
import json

import pytest
from django.core.exceptions import RequestDataTooBig

from lia.errors import exception_handler, handler400

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"


def test_malformed_json_is_422_json_decode_error(web):
    response = web.post(REGISTER, data="{bad json", content_type="application/json")

    assert response.status_code == 422
    body = response.json()
    assert body["error"]["message"] == "JSON decode error"
    assert body["detail"] == [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}]


def test_a_json_array_body_is_422(web):
    response = web.post(REGISTER, data="[1, 2]", content_type="application/json")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_a_body_field_is_located_in_the_body_when_the_query_string_names_it_too(web):
    body = json.dumps({"email": "not an email", "username": "ada", "password": "short"})

    response = web.post(f"{REGISTER}?email=x&password=y", data=body, content_type="application/json")

    assert response.status_code == 422
    assert [item["loc"] for item in response.json()["detail"]] == [["body", "email"], ["body", "password"]]


def test_body_without_content_type_is_parsed_as_json(web):
    body = json.dumps({"email": "ada@example.com", "username": "ada", "password": "Passw0rdX"})

    response = web.generic("POST", REGISTER, body, content_type="")

    assert response.status_code == 201


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", ""])
def test_a_utf8_byte_order_mark_before_the_body_is_skipped(web, content_type):
    body = json.dumps({"email": "ada@example.com", "username": "ada", "password": "Passw0rdX"}).encode()

    response = web.generic("POST", REGISTER, codecs.BOM_UTF8 + body, content_type=content_type)

    assert response.status_code == 201


def test_a_byte_order_mark_is_skipped_only_at_the_start(web):
    body = b'{"email": "ada@example.com", ' + codecs.BOM_UTF8 + b'"username": "ada", "password": "Passw0rdX"}'

    response = web.generic("POST", REGISTER, body, content_type="application/json")

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "JSON decode error"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_other_content_types_are_415(web, content_type):
    response = web.generic("POST", REGISTER, "email=a", content_type=content_type)

    assert response.status_code == 415
    assert response.json() == {"error": {"message": "Content-Type must be application/json"}}


def test_two_megabyte_body_is_413(web):
    body = json.dumps({"email": "ada@example.com", "username": "ada", "password": "x" * (2 * 1024 * 1024)})

    response = web.post(REGISTER, data=body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"error": {"message": "Request body too large (limit 1048576 bytes)"}}
    assert response["Access-Control-Allow-Origin"] == "http://localhost:5173"


def test_django_refusing_a_body_as_too_large_says_what_the_other_layers_say(rf):
    """Behind lia.asgi's and the middleware's checks, Django's own RequestDataTooBig (in a DRF
    view, or outside one) is the same 413 with the same message, not a shorter one of its own."""
    too_big = RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")

    in_a_view = exception_handler(too_big, {"request": rf.post(REGISTER)})
    outside = handler400(rf.post(REGISTER), too_big)

    expected = {"error": {"message": "Request body too large (limit 1048576 bytes)"}}
    assert (in_a_view.status_code, in_a_view.data) == (413, expected)
    assert (outside.status_code, json.loads(outside.content)) == (413, expected)


@pytest.mark.parametrize("path", ["/nope", "/api/v1/unknown", "/api/v1/auth/login/", "/api/v1/auth/me/"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_urls_are_json_404_without_redirects(web, path, method):
    response = getattr(web, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"message": "Not Found"}}


def test_unknown_urls_are_json_in_debug_too(web, settings):
    settings.DEBUG = True

    response = web.get("/nope")

    assert response.json() == {"error": {"message": "Not Found"}}


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/auth/login"), ("put", "/api/v1/auth/register"), ("post", "/health"), ("delete", "/health/live")],
)
def test_wrong_method_is_json_405(web, method, path):
    response = getattr(web, method)(path)

    assert response.status_code == 405
    assert response.json() == {"error": {"message": "Method Not Allowed"}}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("post", "/api/v1/chat/history", "GET, HEAD, OPTIONS"),
        ("get", "/api/v1/chat/stream", "POST, OPTIONS"),
        ("put", "/api/v1/chat/conversations", "DELETE, OPTIONS"),
        ("delete", "/api/v1/auth/me", "GET, HEAD, OPTIONS"),
        ("patch", "/api/v1/chat/conversation/00000000-0000-0000-0000-000000000000", "GET, DELETE, HEAD, OPTIONS"),
    ],
)
def test_a_wrong_method_is_405_before_authentication(web, alice, method, path, allow):
    """As the FastAPI backend's routing by method answered: anonymous or not (it was 401 for an
    anonymous caller, found by a contract audit)."""
    for headers in ({}, alice.bearer):
        response = getattr(web, method)(path, headers=headers)

        assert response.status_code == 405
        assert response.json() == {"error": {"message": "Method Not Allowed"}}
        assert response["Allow"] == allow


def test_a_right_method_still_needs_authentication(web):
    response = web.head("/api/v1/chat/history")

    assert response.status_code == 401


def test_unhandled_errors_are_a_500_envelope_with_the_request_id(web, monkeypatch):
    from accounts import apis

    def explode(**kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(apis, "user_register", explode)
    body = json.dumps({"email": "ada@example.com", "username": "ada", "password": "Passw0rdX"})

    response = web.post(REGISTER, data=body, content_type="application/json", headers={"X-Request-ID": "req-123"})

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "message": "An internal error occurred. Please try again later.",
            "details": {"request_id": "req-123"},
        }
    }
    assert "hunter2" not in response.content.decode()


def test_absurdly_nested_json_is_422(web):
    response = web.post(REGISTER, data="[" * 200_000, content_type="application/json")

    assert response.status_code == 422


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready", "/chat", "/"])
def test_unsafe_methods_on_pages_are_json_405(client, path):
    response = client.post(path)

    assert response.status_code == 405
    assert response.json() == {"error": {"message": "Method Not Allowed"}}


def test_the_admin_login_is_rate_limited_with_the_api_login(client, settings):
    settings.RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = 2
    for _ in range(2):
        assert client.post("/admin/login/", {"username": "x@example.com", "password": "nope"}).status_code == 200

    response = client.post("/admin/login/", {"username": "x@example.com", "password": "nope"})

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
