from django.apps import AppConfig


class SentimentConfig(AppConfig):
    name = "sentiment"
    verbose_name = "Sentiment"

    def ready(self) -> None:
        from sentiment import checks  # noqa: F401  (registers the system checks)
