"""CORS (CONTRACT §3.5), the Origin check (§3.6), request ids and what reaches the logs."""

import json
import logging

import pytest

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"
ORIGIN = "http://localhost:5173"


def test_preflight_from_the_web_client(client):
    response = client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert response["Access-Control-Max-Age"] == "600"
    methods = {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    headers = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "authorization", "accept"} <= headers
    assert "origin" in response["Vary"].lower()


def test_cors_headers_on_success_and_error_responses(web, alice):
    ok = web.get(ME, headers=alice.bearer)
    unauthorized = web.get(ME)

    for response in (ok, unauthorized):
        assert response["Access-Control-Allow-Origin"] == ORIGIN
        assert response["Access-Control-Allow-Credentials"] == "true"
        assert response["Access-Control-Expose-Headers"] == "X-Request-ID"


def test_unlisted_origin_gets_no_cors_headers(client):
    response = client.options(
        LOGIN, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )

    assert "Access-Control-Allow-Origin" not in response


def test_cross_origin_cookie_post_from_an_unlisted_origin_is_refused(client, alice):
    client.cookies["access_token"] = alice.token

    response = client.post("/api/v1/auth/refresh", headers={"Origin": "https://evil.example"})

    assert response.status_code == 403
    assert response.json() == {"error": {"message": "Origin not allowed"}}
    client.cookies["access_token"] = alice.token
    assert client.get(ME).status_code == 200  # the token was not spent


def test_disallowed_referer_is_refused_when_origin_is_absent(client):
    response = client.post("/api/v1/auth/logout", headers={"Referer": "https://evil.example/page"})

    assert response.status_code == 403


@pytest.mark.parametrize("referer", ["http://[::1", "http://[zz]/", "https://[localhost:5173/chat"])
def test_a_malformed_referer_is_refused_not_a_500(client, referer):
    """urlsplit raises on these (found by a contract audit: a 500 for any unsafe request)."""
    response = client.post("/api/v1/auth/logout", headers={"Referer": referer})

    assert response.status_code == 403
    assert response.json() == {"error": {"message": "Origin not allowed"}}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": ORIGIN},
        {"Origin": "http://localhost:3000"},
        {"Referer": "http://localhost:5173/chat"},
        {"Origin": "http://testserver"},  # Lia's own origin
        {},  # non-browser API client
    ],
)
def test_allowed_and_headerless_requests_pass(client, headers):
    response = client.post("/api/v1/auth/logout", headers=headers)

    assert response.status_code == 200


def test_a_cookie_request_over_https_with_neither_origin_nor_referer_passes(client, alice):
    """CONTRACT §3.6 over RELIABILITY 7: non-browser clients send neither header, and browsers
    always send Origin on an unsafe request (a hostile page's "null" included), so this passes."""
    client.cookies["access_token"] = alice.token

    response = client.post("/api/v1/auth/refresh", secure=True)

    assert response.status_code == 200
    assert response.json()["access_token"] != alice.token


def test_a_cookie_request_over_https_with_a_null_origin_is_refused(client, alice):
    client.cookies["access_token"] = alice.token

    response = client.post("/api/v1/auth/refresh", secure=True, headers={"Origin": "null"})

    assert response.status_code == 403


def test_safe_methods_skip_the_origin_check(client, alice):
    response = client.get(ME, headers={"Origin": "https://evil.example", **alice.bearer})

    assert response.status_code == 200


def test_request_id_is_echoed_or_generated(client):
    given = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    generated = client.get("/health/live")
    hostile = client.get("/health/live", headers={"X-Request-ID": "<script>" + "x" * 300})

    assert given["X-Request-ID"] == "abc-123"
    assert len(generated["X-Request-ID"]) == 32
    assert hostile["X-Request-ID"] != "<script>" + "x" * 300


def test_one_access_line_per_request_with_user_and_request_id(web, alice, caplog):
    caplog.set_level(logging.INFO, logger="lia.access")

    web.get(ME, headers={**alice.bearer, "X-Request-ID": "trace-me"})

    lines = [r.msg for r in caplog.records if r.name == "lia.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "http.request"
    assert (line["method"], line["path"], line["status"]) == ("GET", ME, 200)
    assert line["request_id"] == "trace-me"
    assert line["user_id"] == alice.user.pk
    assert line["duration_ms"] >= 0


def test_what_staff_do_in_the_admin_is_logged_under_their_id(admin_client, admin_user, alice, caplog):
    """Found by a security audit: admin requests were logged with user_id null, so a deactivation
    or ended sessions (auth.user_deactivated, auth.sessions_ended) named no one who did it."""
    caplog.set_level(logging.INFO)

    admin_client.post("/admin/accounts/user/", {"action": "end_sessions", "_selected_action": [alice.user.pk]})

    lines = {r.msg["event"]: r.msg for r in caplog.records if isinstance(r.msg, dict)}
    assert lines["http.request"]["user_id"] == admin_user.pk
    assert lines["auth.sessions_ended"]["user_id"] == admin_user.pk


@pytest.mark.django_db(transaction=True)
async def test_staff_are_logged_under_their_id_through_asgi(async_client, admin_user, caplog):
    caplog.set_level(logging.INFO, logger="lia.access")
    await async_client.aforce_login(admin_user)

    await async_client.get("/admin/")

    lines = [r.msg for r in caplog.records if r.name == "lia.access"]
    assert lines[-1]["user_id"] == admin_user.pk


def test_passwords_and_tokens_never_reach_the_logs(web, caplog):
    caplog.set_level(logging.DEBUG)
    password = "Unl1kelyPassw0rd"
    body = {"email": "ada@example.com", "username": "ada", "password": password}

    token = web.post("/api/v1/auth/register", json.dumps(body), content_type="application/json").json()["access_token"]
    web.post(LOGIN, json.dumps({"email": "ada@example.com", "password": password}), content_type="application/json")
    web.post(LOGIN, json.dumps({"email": "ada@example.com", "password": "Wr0ngPass"}), content_type="application/json")
    web.get(ME, headers={"Authorization": f"Bearer {token}"})
    web.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})

    logged = "\n".join(f"{r.getMessage()} {r.msg}" for r in caplog.records)
    assert "auth.login" in logged
    for secret in (password, "Wr0ngPass", token, token.split(".")[1]):
        assert secret not in logged
