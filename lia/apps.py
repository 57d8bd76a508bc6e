from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MIN_SECRET_LENGTH = 32
MIN_SECRET_UNIQUE_CHARACTERS = 5


def secret_problem(value: str) -> str | None:
    """Why `value` is not fit to sign production sessions and tokens, or None."""
    if not value:
        return "is not set"
    if value.startswith("django-insecure") or "never-use-in-production" in value:
        return "is a development placeholder"
    # A few characters repeated (`abcde` seven times passed, found by an audit); a random key
    # never repeats itself whole.
    repeated = value in (value + value)[1:-1]
    if len(value) < MIN_SECRET_LENGTH or len(set(value)) < MIN_SECRET_UNIQUE_CHARACTERS or repeated:
        return f"is weak (use at least {MIN_SECRET_LENGTH} random characters)"
    return None


class LiaConfig(AppConfig):
    name = "lia"
    verbose_name = "Lia"

    def ready(self) -> None:
        from lia import checks  # noqa: F401  (registers the system checks)

        if settings.DEBUG:
            return
        # Production refuses to start rather than sign sessions and tokens with a guessable key.
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            try:
                value = getattr(settings, name)
            except ImproperlyConfigured:  # Django's own answer to an empty SECRET_KEY
                value = ""
            problem = secret_problem(value)
            if problem:
                env_name = "DJANGO_SECRET_KEY" if name == "SECRET_KEY" else name
                raise ImproperlyConfigured(
                    f"{env_name} {problem}. Production (DJANGO_DEBUG=false) needs a strong secret; "
                    'generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'
                )
