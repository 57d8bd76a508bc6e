class ConversationsError(Exception):
    """Base for the conversations app's domain errors; lia.errors maps each to a status."""


class ConversationNotFound(ConversationsError):
    """Unknown, malformed, or someone else's: never revealed as different (CONTRACT §6)."""

    def __init__(self) -> None:
        super().__init__("Conversation not found")


class NoMessageContent(ConversationsError):
    def __init__(self) -> None:
        super().__init__("No message content provided")
