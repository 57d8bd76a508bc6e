from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.admin import TRANSCRIPT_MAX_MESSAGES
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


def test_staff_who_may_only_view_conversations_read_their_transcripts(client, bob, chat):
    from django.contrib.auth.models import Permission

    bob.user.is_staff = True
    bob.user.save()
    bob.user.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    client.force_login(bob.user)

    response = client.get(f"/admin/conversations/conversation/{chat.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Transcript (2 messages)" in page
    assert "Lisbon is lovely in spring." in page


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


def long_conversation(user, count: int) -> Conversation:
    conversation = Conversation.objects.create(user=user, title="Long one")
    start = timezone.now() - timedelta(days=1)
    Message.objects.bulk_create(
        Message(
            conversation=conversation, role="user", content=f"message {n:05}", created_at=start + timedelta(seconds=n)
        )
        for n in range(count)
    )
    return conversation


def test_a_long_conversation_shows_its_latest_messages_and_says_how_many_are_not_shown(
    admin_client, alice, django_assert_max_num_queries
):
    """Found by an audit: a conversation of 20 000 messages rendered them all (11 MB of HTML, 9 s)."""
    conversation = long_conversation(alice.user, TRANSCRIPT_MAX_MESSAGES + 25)

    with django_assert_max_num_queries(15):
        response = admin_client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")

    page = response.content.decode()
    assert page.count('class="lia-message ') == TRANSCRIPT_MAX_MESSAGES
    assert "message 00024" not in page  # the earliest are left out
    assert "message 00025" in page
    assert f"message {TRANSCRIPT_MAX_MESSAGES + 24:05}" in page  # the latest is shown
    assert page.index("message 00025") < page.index("message 00026")  # still oldest first
    assert (
        f"This conversation has {TRANSCRIPT_MAX_MESSAGES + 25:,} messages: the transcript shows the latest "
        f"{TRANSCRIPT_MAX_MESSAGES}, not the 25 earlier ones."
    ) in page


def test_the_page_of_a_conversation_does_not_grow_with_its_length(admin_client, alice):
    sizes, queries = [], []
    for count in (TRANSCRIPT_MAX_MESSAGES, 4 * TRANSCRIPT_MAX_MESSAGES):
        conversation = long_conversation(alice.user, count)
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")
        sizes.append(len(response.content))
        queries.append(len(captured))

    assert sizes[1] < sizes[0] * 1.05  # only the note about the messages left out
    assert queries[1] <= queries[0] + 1  # counting them


def test_a_short_conversation_has_no_note(admin_client, chat):
    page = admin_client.get(f"/admin/conversations/conversation/{chat.pk}/change/").content.decode()

    assert "This conversation has" not in page


@pytest.fixture
def many_conversations(alice) -> int:
    """12 001 conversations, the oldest titled "The oldest"."""
    count = 12_001
    start = timezone.now() - timedelta(days=30)
    Conversation.objects.bulk_create(
        (
            Conversation(
                user=alice.user, title="The oldest" if n == 0 else f"c{n}", updated_at=start + timedelta(minutes=n)
            )
            for n in range(count)
        ),
        batch_size=2000,
    )
    return count


def test_every_page_of_a_big_changelist_can_be_reached(admin_client, many_conversations):
    """Found by an audit: with 12 001 conversations the list said "10000", and pages past 100
    redirected to ?e=1, so the oldest could only be found by searching."""
    url = "/admin/conversations/conversation/"

    first = admin_client.get(url).content.decode()
    assert "10000+ conversations" in first  # a capped count says so
    assert "?p=100" in first

    hundredth = admin_client.get(url, {"p": 100}).content.decode()
    assert "?p=101" in hundredth  # the next pages are linked from the last one counted

    last = admin_client.get(url, {"p": 121})
    assert last.status_code == 200
    assert "The oldest" in last.content.decode()
    assert "12001 conversations" in last.content.decode()  # counted in full once within reach


def test_a_big_changelist_counts_no_more_than_a_few_pages_past_the_one_shown(admin_client, many_conversations):
    with CaptureQueriesContext(connection) as captured:
        admin_client.get("/admin/conversations/conversation/")

    counts = [query["sql"] for query in captured if query["sql"].upper().startswith("SELECT COUNT(")]
    assert len(counts) == 1
    assert "LIMIT 10001" in counts[0].upper()  # the cap and one more, to tell "10000" from "10000+"


def test_the_changelist_counts_messages_only_for_the_conversations_shown(admin_client, alice, chat):
    """Found by an audit: the message count was an aggregate over a join of every conversation
    with its messages, so the page's query, the date hierarchy's and the provider filter's each
    grouped the whole table before a page was picked (5 s a page at 300 000 conversations and
    1.2 million messages). Now a subquery counts each row shown."""
    empty = Conversation.objects.create(user=alice.user, title="Nothing said yet")
    url = "/admin/conversations/conversation/"

    with CaptureQueriesContext(connection) as captured:
        page = admin_client.get(url).content.decode()
    joined = [query["sql"] for query in captured if 'JOIN "conversations_message"' in query["sql"]]
    by_count = admin_client.get(url, {"o": "5"}).content.decode()  # the messages column, ascending

    assert joined == []
    assert '<td class="field-message_count">2</td>' in page
    assert '<td class="field-message_count">0</td>' in page
    assert by_count.index(empty.title) < by_count.index(chat.title)


@pytest.mark.parametrize("page", ["conversation", "user"])
def test_the_delete_confirmation_counts_messages_instead_of_listing_them(admin_client, alice, chat, page):
    """Found by an audit: the page listed (and loaded) every message the deletion takes with it, a
    780 KB page of "Message: user #…" lines and 2 s for a user with 20 000 messages."""
    Message.objects.bulk_create(Message(conversation=chat, role="user", content=f"m{n}") for n in range(300))
    url = (
        f"/admin/conversations/conversation/{chat.pk}/delete/"
        if page == "conversation"
        else f"/admin/accounts/user/{alice.user.pk}/delete/"
    )

    with CaptureQueriesContext(connection) as captured:
        confirmation = admin_client.get(url).content.decode()
    loaded = [query["sql"] for query in captured if query["sql"].startswith('SELECT "conversations_message"."id"')]
    deleted = admin_client.post(url, {"post": "yes"})

    assert "<li>Messages: 302</li>" in confirmation
    assert "Message: user" not in confirmation
    assert "Trip planning" in confirmation  # the conversation itself is listed
    assert loaded == []
    assert deleted.status_code == 302
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


@pytest.mark.parametrize("page", ["99999999999999999999", str(2**63), "-5", "0"])
def test_a_page_number_past_any_count_is_the_admins_empty_page_not_a_500(admin_client, chat, page):
    """Found by a security audit: ?p=99999999999999999999 made the capped count's LIMIT overflow
    the database's 64-bit integers, a 500 on both databases."""
    response = admin_client.get("/admin/conversations/conversation/", {"p": page})

    assert response.status_code in (200, 302)
