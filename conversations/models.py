import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class TurnStatus(models.TextChoices):
    """Where an assistant reply (and so the conversation's latest turn) stands (CONTRACT §12)."""

    STREAMING = "streaming", "Streaming"
    COMPLETE = "complete", "Complete"
    INTERRUPTED = "interrupted", "Interrupted"
    FAILED = "failed", "Failed"


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # Running sentiment {summary, score, count, label, emotion} folded in per user message (§9.7).
    sentiment_state = models.JSONField(null=True, blank=True)
    # The latest turn: its status, and who answered it (for the admin's filters).
    status = models.CharField(max_length=16, choices=TurnStatus.choices, default=TurnStatus.COMPLETE)
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=200, blank=True)

    class Meta:
        # The history list's order, so a page is read straight from the index at any size.
        indexes = [models.Index(fields=["user", "-updated_at", "-created_at"], name="conv_user_recent_idx")]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=TurnStatus.choices, default=TurnStatus.COMPLETE)
    sentiment_data = models.JSONField(null=True, blank=True)
    model_info = models.JSONField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Last write: while a reply streams, its periodic checkpoint (a heartbeat the sweep reads).
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="msg_conv_created_idx"),
            # The replies streaming now, by conversation: the stream cap counts a user's, a new
            # turn looks for one in flight in its conversation, the sweep reads them all. Keyed
            # by conversation, each of those reads only its own entries; keyed by status, every
            # lookup read the whole index (every reply passes through `streaming`, so until
            # VACUUM it also holds thousands of dead entries) once per conversation of the user.
            models.Index(
                fields=["conversation"],
                name="msg_streaming_conv_idx",
                condition=models.Q(status="streaming"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"
