"""Chat admin: for inspecting conversations. Messages read like a transcript and can't be edited."""

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from conversations.models import Conversation, Message


class CappedCountPaginator(Paginator):
    """Counting a big table on every changelist page is a full scan: count up to CAP rows."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        return self.object_list.order_by().values("pk")[: self.CAP].count()


class SentimentLabelFilter(admin.SimpleListFilter):
    title = "overall sentiment"
    parameter_name = "sentiment"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("Positive", "Positive"), ("Neutral", "Neutral"), ("Negative", "Negative")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value():
            return queryset.filter(sentiment_state__label=self.value())
        return queryset


class MessageInline(admin.TabularInline):
    model = Message
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
class ConversationAdmin(admin.ModelAdmin):
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
        return super().get_queryset(request).annotate(message_count=Count("messages"))

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
