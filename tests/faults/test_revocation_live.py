"""Revocation holds in every server process at once (RELIABILITY 2, 3): two server workers that
share nothing but the database (no Redis), and a token logged out or refreshed on one is refused
by the other on the very next request, as a header and as the cookie."""

import httpx

from tests.faults.conftest import PASSWORD, bearer, register

ME = "/api/v1/auth/me"


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"access_token={token}"}


def fresh(client: httpx.Client) -> httpx.Client:
    """The client without the cookie a previous answer set: each request says what it sends."""
    client.cookies.clear()
    return client


def test_a_token_revoked_by_one_process_is_refused_by_the_other_at_once(live):
    first, second = live.start(), live.start()
    with first.client() as one, second.client() as other:
        email = "two-workers@example.com"
        token = register(one, email)
        assert fresh(other).get(ME, headers=bearer(token)).status_code == 200

        assert fresh(one).post("/api/v1/auth/logout", headers=bearer(token)).status_code == 200
        assert fresh(other).get(ME, headers=bearer(token)).status_code == 401
        assert fresh(other).get(ME, headers=cookie(token)).status_code == 401
        assert fresh(other).post("/api/v1/auth/refresh", headers=bearer(token)).status_code == 401

        # A refresh on one process spends the token on the other too.
        login = fresh(one).post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        spent = login.json()["access_token"]
        renewed = fresh(other).post("/api/v1/auth/refresh", headers=bearer(spent))
        assert renewed.status_code == 200
        assert fresh(one).get(ME, headers=bearer(spent)).status_code == 401
        assert fresh(one).get(ME, headers=bearer(renewed.json()["access_token"])).status_code == 200
