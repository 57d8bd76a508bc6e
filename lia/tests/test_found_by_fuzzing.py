"""Regressions for what schemathesis found outside the API views (lia/tests/test_openapi.py)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
@pytest.mark.parametrize("method", ["QUERY", "PROPFIND", "POST"])
def test_unknown_methods_on_health_are_a_json_405(client, path, method):
    """Django's CSRF check used to answer these with its HTML 403 page."""
    response = client.generic(method, path)

    assert response.status_code == 405
    assert response.json() == {"error": {"message": "Method Not Allowed"}}
    assert response["Allow"] == "GET, HEAD"


def test_a_csrf_failure_is_json():
    """Django's CSRF check still guards the admin's forms; its refusals are the API's error shape."""
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"message": "CSRF verification failed. Reload the page and try again."}}
