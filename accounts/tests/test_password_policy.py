"""Password policy details (RELIABILITY 9) the contract tests don't pin: an over-long password is
refused before it is hashed, and passwords are compared byte-exactly."""

import json
from typing import ClassVar

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


class CountingHasher(MD5PasswordHasher):
    calls: ClassVar[int] = 0

    def encode(self, password, salt):
        CountingHasher.calls += 1
        return super().encode(password, salt)


def post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def test_an_over_long_password_is_refused_before_it_is_hashed(web, settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    CountingHasher.calls = 0

    response = post(web, REGISTER, {"email": "ada@example.com", "username": "ada", "password": "Aa1" + "x" * 10_000})

    assert response.status_code == 422
    assert CountingHasher.calls == 0


@pytest.mark.parametrize("variant", [" Passw0rdX", "Passw0rdX ", "passw0rdX", "PASSW0RDX", "Passw0rd"])
def test_passwords_are_compared_exactly(web, variant):
    post(web, REGISTER, {"email": "ada@example.com", "username": "ada", "password": "Passw0rdX"})

    assert post(web, LOGIN, {"email": "ada@example.com", "password": variant}).status_code == 401
    assert post(web, LOGIN, {"email": "ada@example.com", "password": "Passw0rdX"}).status_code == 200
