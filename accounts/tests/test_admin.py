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
