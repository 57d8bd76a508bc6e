"""The chat stream checks the token's session inside its write-ahead (one statement on
PostgreSQL) rather than before everything else, as the other endpoints do. Whatever the request,
a token its user no longer accepts still gets the same 401 as everywhere, before any other
answer, and writes, asks and spends nothing of the user's."""

import json
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.hashers import make_password

from accounts.models import User
from accounts.services import user_deactivate, user_sessions_end
from conftest import Persona
from conversations.models import Conversation, Message
from conversations.tests.conftest import STREAM, body
from conversations.tests.scripted import Script

pytestmark = pytest.mark.django_db

LOGOUT = "/api/v1/auth/logout"


def post(client, persona: Persona, payload: dict, token: str | None = None):
    return client.post(
        STREAM,
        json.dumps(payload),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token or persona.token}"},
    )


def change_password(web, user: User) -> None:
    user.set_password("An0ther password!")
    user.save()


# How a session ends: each leaves `alice.token` refused everywhere (accounts/tests/test_sessions).
ENDINGS: dict[str, Callable[..., None]] = {
    "logged out": lambda web, user, token: web.post(LOGOUT, headers={"Authorization": f"Bearer {token}"}),
    "deactivated": lambda web, user, token: user_deactivate(user=user),
    "password changed": lambda web, user, token: change_password(web, user),
    "password changed in bulk": lambda web, user, token: User.objects.filter(pk=user.pk).update(
        password=make_password("An0ther password!")
    ),
    "sessions ended": lambda web, user, token: user_sessions_end(users=User.objects.filter(pk=user.pk)),
    "user deleted": lambda web, user, token: User.objects.filter(pk=user.pk).delete(),
}

# A request per answer the stream gives a live session before streaming (the control below).
REQUESTS: dict[str, tuple[Callable[[Persona], dict], int]] = {
    "a turn": (lambda bob: body(), 200),
    "an invalid body": (lambda bob: body(message=""), 422),
    "no text": (lambda bob: {"messages": []}, 400),
    "a malformed conversation id": (lambda bob: body(conversation_id="nope"), 404),
    "someone else's conversation": (
        lambda bob: body(conversation_id=str(Conversation.objects.create(user=bob.user, title="Bob's").pk)),
        404,
    ),
    "an unknown conversation": (lambda bob: body(conversation_id=str(uuid.uuid4())), 404),
}


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_a_live_session_gets_the_usual_answer(web, alice, bob, scripted, request_name):
    """The control for the test below: each request is what its name says."""
    make, status = REQUESTS[request_name]

    assert post(web, alice, make(bob)).status_code == status


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_an_ended_session_is_401_before_any_other_answer(web, alice, bob, scripted: Script, ending, request_name):
    ENDINGS[ending](web, alice.user, alice.token)
    web.cookies.clear()
    payload = REQUESTS[request_name][0](bob)
    messages_before = Message.objects.count()

    response = post(web, alice, payload)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    message = "User not found" if ending == "user deleted" else "Invalid or expired token"
    assert response.json() == {"error": {"message": message}}
    assert Message.objects.count() == messages_before
    assert scripted.calls == []


def end_and_log_in_again(web, alice: Persona) -> str:
    """End the session of `alice.token` (log it out) and return a new token of a new session."""
    ENDINGS["logged out"](web, alice.user, alice.token)
    login = web.post(
        "/api/v1/auth/login",
        json.dumps({"email": alice.user.email, "password": alice.password}),
        content_type="application/json",
    )
    web.cookies.clear()
    return login.json()["access_token"]


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_an_ended_session_spends_nothing_of_its_users_rate_limit(web, alice, bob, scripted, settings, request_name):
    """Someone holding a logged-out token can't lock its user out of the chat, whatever they send."""
    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 2
    new_token = end_and_log_in_again(web, alice)

    for _ in range(5):
        assert post(web, alice, REQUESTS[request_name][0](bob)).status_code == 401

    assert [post(web, alice, body(), token=new_token).status_code for _ in range(3)] == [200, 200, 429]


def test_an_ended_session_is_401_before_the_rate_limit_and_is_not_counted(web, alice, scripted, settings):
    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 2
    new_token = end_and_log_in_again(web, alice)
    assert post(web, alice, body(), token=new_token).status_code == 200
    assert post(web, alice, body(), token=new_token).status_code == 200  # the minute's two turns
    assert post(web, alice, body(), token=new_token).status_code == 429

    assert post(web, alice, body()).status_code == 401  # the ended session: refused, not limited

    settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = 4  # room for one more attempt, if the 401 took none
    assert post(web, alice, body(), token=new_token).status_code == 200


def test_an_ended_session_is_401_before_the_spent_token_budget(web, alice, scripted, settings):
    settings.CHAT_DAILY_TOKEN_BUDGET = 1
    assert post(web, alice, body()).status_code == 200
    Message.objects.filter(role="assistant").update(prompt_tokens=10, completion_tokens=10)
    assert post(web, alice, body()).status_code == 429  # the budget is spent

    ENDINGS["sessions ended"](web, alice.user, alice.token)

    assert post(web, alice, body()).status_code == 401


def test_options_checks_the_session_as_every_endpoint_does(web, alice):
    ENDINGS["logged out"](web, alice.user, alice.token)
    web.cookies.clear()

    response = web.options(STREAM, headers=alice.bearer)

    assert response.status_code == 401


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_405_whatever_the_token(web, alice, method):
    """The method is checked before any token (CONTRACT §4.1, lia.middleware.MethodCheckMiddleware)."""
    ENDINGS["logged out"](web, alice.user, alice.token)
    web.cookies.clear()

    response = getattr(web, method)(STREAM, headers=alice.bearer)

    assert response.status_code == 405
    assert response["Allow"] == "POST, OPTIONS"
