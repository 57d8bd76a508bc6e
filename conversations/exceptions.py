class ConversationsError(Exception):
    """Base for the conversations app's domain errors; lia.errors maps each to a status."""


class ConversationNotFound(ConversationsError):
    """Unknown, malformed, or someone else's: never revealed as different (CONTRACT §6)."""

    def __init__(self) -> None:
        super().__init__("Conversation not found")


class NoMessageContent(ConversationsError):
    def __init__(self) -> None:
        super().__init__("No message content provided")


class TooManyStreams(ConversationsError):
    """The user already has the most replies streaming at once that the server allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Too many replies are streaming at once (at most {limit}). Wait for one to finish and try again."
        )
        self.limit = limit


class TokenBudgetSpent(ConversationsError):
    """The user has spent today's CHAT_DAILY_TOKEN_BUDGET; new turns wait for it to reset."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("You have used today's token budget. Please try again after it resets.")
        self.retry_after = retry_after


class ConversationGone(Exception):
    """The conversation of a reply still streaming was deleted meanwhile (by its user in another
    tab, or by staff in the admin): there is nowhere left to store the reply. Not a ConversationsError:
    it happens inside a stream, never as an HTTP answer."""
