class AccountsError(Exception):
    """Base for the accounts app's domain errors; lia.errors maps each to a status."""


class AccountExists(AccountsError):
    def __init__(self) -> None:
        super().__init__("An account with this email or username already exists")


class AccountRaceLost(AccountExists):
    """A concurrent registration inserted the same email or username first."""


class SignInBusy(AccountsError):
    """More sign-ins are hashing their passwords than the server takes at once, and this one
    waited PASSWORD_HASH_WAIT_SECONDS for its turn (accounts.hashers.password_hashing)."""

    retry_after = 2

    def __init__(self) -> None:
        super().__init__("The server is busy signing people in. Please try again in a moment.")


class InvalidCredentials(AccountsError):
    def __init__(self) -> None:
        super().__init__("Invalid email or password")


class TokenRejected(AccountsError):
    """The presented token can't be used (bad, expired, revoked, or its user is gone)."""

    def __init__(self, message: str = "Invalid or expired token") -> None:
        super().__init__(message)
