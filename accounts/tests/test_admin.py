from io import StringIO

import pytest

pytestmark = pytest.mark.django_db


def test_staff_can_list_and_search_users(admin_client, alice, bob):
    response = admin_client.get("/admin/accounts/user/", {"q": "alice"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "alice@example.com" in page
    assert "bob@example.com" not in page


def test_user_change_page_renders(admin_client, alice):
    assert admin_client.get(f"/admin/accounts/user/{alice.user.pk}/change/").status_code == 200


def test_non_staff_cannot_reach_the_admin(client, alice):
    client.force_login(alice.user)

    response = client.get("/admin/accounts/user/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_createsuperuser_works_with_email_and_username(db):
    from django.core.management import call_command

    from accounts.models import User

    call_command("createsuperuser", "--noinput", email="root@example.com", username="root")

    assert User.objects.get(email="root@example.com").is_superuser


def test_createsuperuser_stores_the_email_as_every_login_reads_it(db, web, monkeypatch):
    """Every login path NFKC-normalises the address typed (the API, the admin's login form), but
    `createsuperuser` (create_user) stored it as given: a full-width look-alike made an account
    no one could ever sign in to, nor `createsuperuser` see as taken."""
    import json

    from django.core.management import CommandError, call_command

    from accounts.models import User
    from conftest import PASSWORD

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", email="\uff52oot@example.com", username="root")

    login = web.post(
        "/api/v1/auth/login",
        json.dumps({"email": "\uff52oot@example.com", "password": PASSWORD}),
        content_type="application/json",
    )
    assert User.objects.get().email == "root@example.com"
    assert login.status_code == 200
    with pytest.raises(CommandError, match="That email is already taken"):
        call_command("createsuperuser", "--noinput", email="\uff52oot@example.com", username="other")


def test_staff_cannot_bring_a_logged_out_token_back(admin_client, alice, client):
    """The denylist is read-only in the admin: deleting its row revived a logged-out token, and
    the add form ended in a 500 (found by an audit)."""
    from accounts.models import RevokedToken

    assert client.post("/api/v1/auth/logout", headers=alice.bearer).status_code == 200
    revoked = RevokedToken.objects.get()
    page = "/admin/accounts/revokedtoken/"

    listing = admin_client.get(page)
    single = admin_client.post(f"{page}{revoked.pk}/delete/", {"post": "yes"})
    bulk = admin_client.post(page, {"action": "delete_selected", "_selected_action": [revoked.pk], "post": "yes"})
    added = admin_client.post(f"{page}add/", {"jti": "x" * 32, "user": alice.user.pk})

    assert listing.status_code == 200
    assert revoked.jti in listing.content.decode()
    assert single.status_code == 403
    assert bulk.status_code == 200  # the changelist again: the action isn't offered, nothing is deleted
    assert added.status_code == 403
    assert RevokedToken.objects.filter(pk=revoked.pk).exists()
    assert RevokedToken.objects.count() == 1
    assert client.get("/api/v1/auth/me", headers=alice.bearer).status_code == 401


def test_the_admin_sets_passwords_by_the_contracts_rules(admin_client, alice):
    """CONTRACT §5.1's rules wherever a password is set (found by an audit: the admin set `a`)."""
    page = f"/admin/accounts/user/{alice.user.pk}/password/"

    weak = admin_client.post(page, {"password1": "a", "password2": "a"})
    no_digit = admin_client.post(page, {"password1": "NoDigitsHere", "password2": "NoDigitsHere"})
    alice.user.refresh_from_db()
    unchanged = alice.user.check_password("Sup3rSecret")
    strong = admin_client.post(page, {"password1": "N3wSecretX", "password2": "N3wSecretX"})

    assert weak.status_code == 200
    assert "Password must have at least 8 characters" in weak.content.decode()
    assert "Password must contain at least one digit" in no_digit.content.decode()
    assert unchanged
    assert strong.status_code == 302
    alice.user.refresh_from_db()
    assert alice.user.check_password("N3wSecretX")


@pytest.mark.parametrize(
    ("email", "username", "error"),
    [
        ("new@example.com", "ab", "Ensure this value has at least 3 characters"),
        ("new@example.com", "bad name!", "Enter a valid value"),
        ("ALICE@example.com", "newcomer", "A user with this email already exists."),
        ("new@example.com", "ALICE", "with this Username already exists."),
    ],
)
def test_the_admin_creates_users_by_the_contracts_rules(admin_client, alice, email, username, error):
    from accounts.models import User

    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"email": email, "username": username, "password1": "Sup3rSecret", "password2": "Sup3rSecret"},
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not User.objects.filter(email=email, username=username).exists()


def test_staff_can_save_a_user_with_an_internationalised_address(admin_client, web):
    """The API takes josé@ (as the FastAPI backend did); the admin's form refused to save such a
    user, so staff could not even deactivate them there."""
    from accounts.models import User

    registered = web.post(
        "/api/v1/auth/register",
        {"email": "josé@example.com", "username": "jose", "password": "Sup3rSecret"},
        content_type="application/json",
    )
    user = User.objects.get(username="jose")

    response = admin_client.post(
        f"/admin/accounts/user/{user.pk}/change/",
        {"email": user.email, "username": user.username},  # is_active unchecked
    )

    assert registered.status_code == 201
    assert response.status_code == 302, response.content.decode()[:500]
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("\uff41lice@example.com", "A user with this email already exists."),  # full-width: alice@
        ("a\u200bb@example.com", "Enter a valid email address."),
    ],
)
def test_the_admin_reads_emails_as_the_api_does(admin_client, alice, email, error):
    from accounts.models import User

    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"email": email, "username": "newcomer", "password1": "Sup3rSecret", "password2": "Sup3rSecret"},
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    assert User.objects.count() == 2  # alice and the admin


@pytest.mark.parametrize(
    ("email", "username", "complaint"),
    [
        ("ROOT@Example.com", "other", "That email is already taken."),
        ("other@example.com", "ROOT", "That username is already taken."),
    ],
)
def test_createsuperuser_refuses_a_taken_email_or_username_in_one_line(db, email, username, complaint):
    """Emails and usernames are unique whatever their case (constraints on lower(), which Django's
    command doesn't see): a taken one ended in an IntegrityError traceback (found by an audit)."""
    from django.core.management import CommandError, call_command

    from accounts.models import User

    call_command("createsuperuser", "--noinput", email="root@example.com", username="root")

    with pytest.raises(CommandError, match=complaint):
        call_command("createsuperuser", "--noinput", email=email, username=username)
    assert User.objects.count() == 1


def test_createsuperuser_asks_again_for_a_taken_username(db, monkeypatch):
    from django.core.management import call_command

    from accounts.models import User

    call_command("createsuperuser", "--noinput", email="root@example.com", username="root")
    answers = iter(["Root", "second"])
    monkeypatch.setattr("builtins.input", lambda message: next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "Sup3rSecret")
    stderr = StringIO()

    call_command("createsuperuser", email="two@example.com", stdin=Tty(), stderr=stderr)

    assert "That username is already taken." in stderr.getvalue()
    assert User.objects.get(email="two@example.com").username == "second"


class Tty(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def user_manager(client, bob):
    """Bob: staff who may view and change users, not a superuser."""
    from django.contrib.auth.models import Permission

    bob.user.is_staff = True
    bob.user.save(update_fields=["is_staff"])
    bob.user.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client.force_login(bob.user)
    return client


def test_staff_who_may_change_users_cannot_make_anyone_a_superuser(user_manager, bob, alice):
    """Found by a security audit: a user manager (change_user only) ticked is_superuser on their
    own account, or on anyone's, and granted any permission, so the permission was a superuser's."""
    from django.contrib.auth.models import Permission

    every_permission = list(Permission.objects.values_list("pk", flat=True))
    for person in (bob, alice):
        user_manager.post(
            f"/admin/accounts/user/{person.user.pk}/change/",
            {
                "email": person.user.email,
                "username": person.user.username,
                "is_active": "on",
                "is_staff": "on",
                "is_superuser": "on",
                "user_permissions": every_permission,
            },
        )
        person.user.refresh_from_db()
        assert not person.user.is_superuser
        assert person.user.user_permissions.count() == (2 if person is bob else 0)
    alice.user.refresh_from_db()
    assert not alice.user.is_staff


def test_staff_who_may_change_users_cannot_take_over_a_staff_account(user_manager, admin_user, alice):
    """Setting a superuser's password (or email) was theirs to do too: then they signed in as it."""
    password = user_manager.post(
        f"/admin/accounts/user/{admin_user.pk}/password/", {"password1": "N3wSecretX", "password2": "N3wSecretX"}
    )
    change = user_manager.post(
        f"/admin/accounts/user/{admin_user.pk}/change/",
        {"email": "bob2@example.com", "username": admin_user.username, "is_active": "on"},
    )
    chat_user = user_manager.post(
        f"/admin/accounts/user/{alice.user.pk}/change/",
        {"email": alice.user.email, "username": "alice2", "is_active": "on"},
    )

    assert password.status_code == 403
    assert change.status_code == 403
    admin_user.refresh_from_db()
    assert not admin_user.check_password("N3wSecretX")
    assert admin_user.email != "bob2@example.com"
    assert chat_user.status_code == 302  # chat users are still theirs to manage
    alice.user.refresh_from_db()
    assert alice.user.username == "alice2"


def test_staff_who_may_change_users_cannot_end_a_staff_accounts_sessions(user_manager, admin_user, alice):
    """The end-sessions action asked only for the change permission on users in general, so a
    user manager could end a superuser's sessions (their API tokens, and since ending sessions
    ends admin sign-ins, their admin session too), which changing that account refuses them."""
    from django.test import Client

    superuser = Client()
    superuser.force_login(admin_user)

    response = user_manager.post(
        "/admin/accounts/user/", {"action": "end_sessions", "_selected_action": [admin_user.pk, alice.user.pk]}
    )

    assert response.status_code == 302
    admin_user.refresh_from_db()
    alice.user.refresh_from_db()
    assert admin_user.tokens_valid_after is None
    assert alice.user.tokens_valid_after is None  # nothing of a refused selection
    assert superuser.get("/admin/accounts/user/").status_code == 200
    user_manager.post("/admin/accounts/user/", {"action": "end_sessions", "_selected_action": [alice.user.pk]})
    alice.user.refresh_from_db()
    assert alice.user.tokens_valid_after is not None  # chat users are still theirs to manage


@pytest.mark.parametrize("bulk", [False, True])
def test_a_user_who_once_logged_out_can_be_deleted(admin_client, web, alice, bulk):
    """The revoked-token list is read-only (deleting a row revives its token), and the user's
    delete confirmation checked the permission to delete each of their revoked tokens: a user
    who had ever logged out could not be deleted, by a superuser either (403)."""
    from accounts.models import RevokedToken, User

    web.post("/api/v1/auth/logout", headers=alice.bearer)
    assert RevokedToken.objects.filter(user=alice.user).count() == 1

    page = admin_client.get(f"/admin/accounts/user/{alice.user.pk}/delete/").content.decode()
    if bulk:
        response = admin_client.post(
            "/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [alice.user.pk], "post": "yes"}
        )
    else:
        response = admin_client.post(f"/admin/accounts/user/{alice.user.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert "Revoked tokens: 1" in page
    assert not User.objects.filter(pk=alice.user.pk).exists()
    assert not RevokedToken.objects.exists()


def test_staff_who_may_change_groups_cannot_grant_their_own_group_more(client, bob):
    """A group's permissions are its members': staff holding change_group (through their group)
    gave that group every permission, and so themselves (found by a security audit)."""
    from django.contrib.auth.models import Group, Permission

    support = Group.objects.create(name="support")
    support.permissions.add(*Permission.objects.filter(codename__in=["view_group", "change_group"]))
    bob.user.is_staff = True
    bob.user.save(update_fields=["is_staff"])
    bob.user.groups.add(support)
    client.force_login(bob.user)

    changed = client.post(
        f"/admin/auth/group/{support.pk}/change/",
        {"name": "support", "permissions": list(Permission.objects.values_list("pk", flat=True))},
    )
    added = client.post("/admin/auth/group/add/", {"name": "everything"})

    assert changed.status_code == 403
    assert added.status_code == 403
    assert support.permissions.count() == 2
    assert client.get(f"/admin/auth/group/{support.pk}/change/").status_code == 200  # they may still look


def test_superusers_still_manage_groups(admin_client):
    from django.contrib.auth.models import Group, Permission

    view_user = Permission.objects.get(codename="view_user")
    response = admin_client.post("/admin/auth/group/add/", {"name": "support", "permissions": [view_user.pk]})

    assert response.status_code == 302
    assert list(Group.objects.get(name="support").permissions.all()) == [view_user]


def test_staff_who_may_delete_users_cannot_delete_a_staff_account(user_manager, bob, admin_user, alice):
    from django.contrib.auth.models import Permission

    from accounts.models import User

    bob.user.user_permissions.add(Permission.objects.get(codename="delete_user"))
    page = "/admin/accounts/user/"

    single = user_manager.post(f"{page}{admin_user.pk}/delete/", {"post": "yes"})
    bulk = user_manager.post(
        page, {"action": "delete_selected", "_selected_action": [admin_user.pk, alice.user.pk], "post": "yes"}
    )

    assert single.status_code == 403
    assert bulk.status_code == 403  # all or nothing
    assert User.objects.filter(pk__in=[admin_user.pk, alice.user.pk]).count() == 2
