"""Chat admin: for inspecting conversations. Messages read like a transcript and can't be edited."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.utils.functional import cached_property

from accounts.admin_deletion import DeletionCountsDependants
from conversations.models import Conversation, Message
from conversations.selectors import message_count_subquery

# A conversation's page shows at most this many of its messages, the latest (a conversation of
# 20 000 messages was 11 MB of HTML), and says how many earlier ones it leaves out.
TRANSCRIPT_MAX_MESSAGES = 500


class AtLeast(int):
    """A count that stopped at its cap: the changelist shows it as "10000+"."""

    def __str__(self) -> str:
        return f"{int(self)}+"


class CappedCountPaginator(Paginator):
    """Counting a big table on every changelist page is a full scan: count up to CAP rows, or up to
    PAGES_AHEAD pages past the page asked for (`reach`), whichever is more. A count that reaches
    its cap is shown as "N+", and the last page it links to asks for more, so every page can be
    reached, by its links or its number; the count reads about as many rows as the page's own
    OFFSET already does."""

    CAP = 10_000
    PAGES_AHEAD = 10
    # The count's LIMIT (cap + 1) must be a 64-bit integer: ?p=99999999999999999999 was a 500.
    MAX_CAP = 2**62

    def __init__(self, *args: Any, reach: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cap = min(max(self.CAP, (max(reach, 1) + self.PAGES_AHEAD) * self.per_page), self.MAX_CAP)

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        count = self.object_list.order_by().values("pk")[: self.cap + 1].count()
        return AtLeast(self.cap) if count > self.cap else count


class SentimentLabelFilter(admin.SimpleListFilter):
    title = "overall sentiment"
    parameter_name = "sentiment"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("Positive", "Positive"), ("Neutral", "Neutral"), ("Negative", "Negative")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value():
            return queryset.filter(sentiment_state__label=self.value())
        return queryset


class LatestMessagesFormSet(BaseInlineFormSet):
    """The conversation's latest TRANSCRIPT_MAX_MESSAGES messages, oldest first."""

    def get_queryset(self) -> list[Message]:  # type: ignore[override]
        if not hasattr(self, "_queryset"):
            latest = list(self.queryset.order_by("-created_at", "-id")[:TRANSCRIPT_MAX_MESSAGES])
            latest.reverse()
            full = len(latest) == TRANSCRIPT_MAX_MESSAGES
            self._not_shown = self.queryset.count() - len(latest) if full else 0
            self._queryset = latest
        return self._queryset

    @property
    def not_shown(self) -> int:
        """How many earlier messages the transcript leaves out."""
        self.get_queryset()
        return self._not_shown


class MessageInline(admin.TabularInline):
    model = Message
    formset = LatestMessagesFormSet
    fields = ("created_at", "role", "status", "content", "sentiment", "served_by")
    readonly_fields = fields
    ordering = ("created_at", "id")
    extra = 0
    can_delete = False
    show_change_link = False
    template = "admin/conversations/message_transcript.html"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The transcript is part of its conversation: whoever may view the conversation reads it.
        (Message has no admin of its own, so staff held no `view_message` to give: found by an
        audit, a view-only staff user saw conversations without a single message.)"""
        return request.user.has_perm("conversations.view_conversation") or request.user.has_perm(
            "conversations.change_conversation"
        )

    @admin.display(description="sentiment")
    def sentiment(self, message: Message) -> str:
        data = (message.sentiment_data or {}).get("message")
        if not data:
            return "—"
        emotion = f", {data['emotion']}" if data.get("emotion") else ""
        return f"{data['label']} ({data['score']:+.2f}{emotion})"

    @admin.display(description="model")
    def served_by(self, message: Message) -> str:
        info = message.model_info or {}
        if not info:
            return ""
        served = f" via {info['served_by']}" if info.get("served_by") else ""
        return f"{info.get('provider')}/{info.get('model')}{served}"


@admin.register(Conversation)
class ConversationAdmin(DeletionCountsDependants, admin.ModelAdmin):
    list_display = (
        "title_or_id",
        "user",
        "provider",
        "model",
        "message_count",
        "last_sentiment",
        "status",
        "updated_at",
    )
    list_filter = ("status", "provider", SentimentLabelFilter, "updated_at", "created_at")
    search_fields = ("user__email", "title", "=id")
    list_select_related = ("user",)
    readonly_fields = (
        "id",
        "user",
        "title",
        "created_at",
        "updated_at",
        "status",
        "provider",
        "model",
        "sentiment_state",
    )
    fields = readonly_fields
    inlines = [MessageInline]
    date_hierarchy = "updated_at"
    ordering = ("-updated_at",)
    paginator = CappedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        # A subquery per conversation shown, on the messages' index (found by an audit: as an
        # aggregate over a join, every conversation's messages were counted, and the filters'
        # and the date hierarchy's queries grouped by conversation too, before a page was
        # picked: 5 s a page at 300 000 conversations).
        return super().get_queryset(request).annotate(message_count=message_count_subquery())

    def get_paginator(self, request: HttpRequest, queryset: QuerySet, per_page: int, *args: Any, **kwargs: Any) -> Any:
        try:
            reach = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            reach = 1
        return self.paginator(queryset, per_page, *args, reach=reach, **kwargs)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        for inline in context.get("inline_admin_formsets", []):
            not_shown = getattr(inline.formset, "not_shown", 0)
            if not_shown:
                shown = inline.formset.initial_form_count()
                messages.warning(
                    request,
                    f"This conversation has {shown + not_shown:,} messages: the transcript shows the latest "
                    f"{shown:,}, not the {not_shown:,} earlier ones.",
                )
        return super().render_change_form(request, context, *args, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewing is allowed through the view permission; nothing here is editable.
        return False

    @admin.display(description="title", ordering="title")
    def title_or_id(self, conversation: Conversation) -> str:
        return conversation.title or str(conversation.pk)

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count  # type: ignore[attr-defined]

    @admin.display(description="sentiment")
    def last_sentiment(self, conversation: Conversation) -> str:
        state = conversation.sentiment_state or {}
        if "label" not in state:
            return "—"
        return f"{state['label']} ({state.get('score', 0):+.2f})"
