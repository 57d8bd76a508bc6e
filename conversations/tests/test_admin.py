import pytest

from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(alice) -> Conversation:
    conversation = Conversation.objects.create(
        user=alice.user,
        title="Trip planning",
        provider="gemini",
        model="gemini-2.5-flash",
        status="interrupted",
        sentiment_state={"score": 0.6, "label": "Positive", "count": 1, "summary": "User is excited"},
    )
    Message.objects.create(
        conversation=conversation,
        role="user",
        content="I can't wait for <b>Lisbon</b>!",
        sentiment_data={"message": {"score": 0.6, "label": "Positive", "emotion": "excited"}, "cumulative": None},
    )
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Lisbon is lovely in spring.",
        status="interrupted",
        model_info={"provider": "gemini", "model": "gemini-2.5-flash", "thoughts": None, "served_by": "offline"},
    )
    return conversation


def test_changelist_shows_conversations(admin_client, chat):
    response = admin_client.get("/admin/conversations/conversation/")

    assert response.status_code == 200
    page = response.content.decode()
    for expected in ("Trip planning", "alice@example.com", "gemini-2.5-flash", "Positive (+0.60)", "Interrupted"):
        assert expected in page


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ({"q": "alice@example.com"}, True),
        ({"q": "Trip"}, True),
        ({"q": "nothing-like-it"}, False),
        ({"status__exact": "interrupted"}, True),
        ({"status__exact": "complete"}, False),
        ({"provider__exact": "gemini"}, True),
        ({"sentiment": "Positive"}, True),
        ({"sentiment": "Negative"}, False),
    ],
)
def test_search_and_filters(admin_client, chat, query, found):
    response = admin_client.get("/admin/conversations/conversation/", query)

    assert response.status_code == 200
    assert ("Trip planning" in response.content.decode()) is found


def test_search_by_id(admin_client, chat):
    response = admin_client.get("/admin/conversations/conversation/", {"q": str(chat.pk)})

    assert "Trip planning" in response.content.decode()


def test_conversation_page_is_a_read_only_transcript(admin_client, chat):
    response = admin_client.get(f"/admin/conversations/conversation/{chat.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Transcript (2 messages)" in page
    assert "I can&#x27;t wait for &lt;b&gt;Lisbon&lt;/b&gt;!" in page  # escaped, never rendered as HTML
    assert "Lisbon is lovely in spring." in page
    assert "Positive (+0.60, excited)" in page
    assert "gemini/gemini-2.5-flash via offline" in page
    assert 'name="_save"' not in page
    assert "<textarea" not in page


def test_messages_cannot_be_edited_or_added(admin_client, chat):
    message = chat.messages.first()

    response = admin_client.post(
        f"/admin/conversations/conversation/{chat.pk}/change/",
        {"title": "hacked", "messages-TOTAL_FORMS": "1", "messages-0-content": "edited", "messages-0-id": message.pk},
    )

    assert response.status_code == 403
    message.refresh_from_db()
    assert message.content == "I can't wait for <b>Lisbon</b>!"
    assert admin_client.get("/admin/conversations/conversation/add/").status_code == 403


def test_normal_users_are_refused(client, alice, chat):
    client.force_login(alice.user)

    response = client.get("/admin/conversations/conversation/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
