"""Fixtures shared by every app's tests: personas, HTTP clients, a clean rate limiter, a scripted
LLM provider."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.core.cache import cache
from django.db import connections
from django.test import AsyncClient, Client

from accounts.models import User
from accounts.ratelimit import limiter
from accounts.tests.factories import UserFactory
from accounts.tokens import token_issue
from conversations.tests.scripted import Script, ScriptedProvider

PASSWORD = "Sup3rSecret"
WEB_ORIGIN = "http://localhost:5173"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's, and before it drops the test database: the connection that async tests'
    ORM calls (`sync_to_async`, outside any `async_to_sync`) left open in asgiref's one
    thread-sensitive worker thread closed there. Left open it stays out of the pool, and
    PostgreSQL refused to drop the database ("being accessed by other users": a warning at the
    end of every run on PostgreSQL)."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@dataclass
class Persona:
    user: User
    token: str
    password: str = PASSWORD

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _persona(email: str, username: str) -> Persona:
    user = UserFactory(email=email, username=username, password=PASSWORD)
    return Persona(user=user, token=token_issue(user=user).value)


@pytest.fixture
def alice(db: None) -> Persona:
    return _persona("alice@example.com", "alice")


@pytest.fixture
def bob(db: None) -> Persona:
    return _persona("bob@example.com", "bob")


@pytest.fixture
def web() -> Client:
    """A browser-like client: the web client's origin on every request."""
    return Client(headers={"Origin": WEB_ORIGIN})


class BrowserAsyncClient(AsyncClient):
    """AsyncClient sending the web client's Origin. (AsyncClient(headers=...) can't be used:
    Django 5.2 turns constructor headers into WSGI names, which its ASGI scope mangles.)"""

    def generic(self, method, path, *args, headers=None, **kwargs):  # type: ignore[no-untyped-def]
        return super().generic(method, path, *args, headers={"Origin": WEB_ORIGIN, **(headers or {})}, **kwargs)


@pytest.fixture
async def async_web() -> AsyncIterator[AsyncClient]:
    yield BrowserAsyncClient()
    # The test client keeps connections open across requests (for test transactions); the
    # ones sync views opened in asgiref's worker thread must be closed from that thread, or
    # PostgreSQL refuses to drop the test database at the end.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser(email="admin@example.com", username="admin", password=PASSWORD)


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    limiter.reset()
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()


@pytest.fixture
def scripted(settings) -> Iterator[Script]:
    """Route provider "scripted" to ScriptedProvider and hand the test its script."""
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "scripted": {"BACKEND": "conversations.tests.scripted.ScriptedProvider"},
    }
    script = Script().reply("Hi", "! ", "How ", "can I help?")
    ScriptedProvider.current = script
    yield script
    ScriptedProvider.current = Script()
