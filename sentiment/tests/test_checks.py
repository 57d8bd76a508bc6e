from django.core.checks import run_checks


def check_ids() -> set[str]:
    return {message.id for message in run_checks() if message.id and message.id.startswith("sentiment.")}


def test_the_test_settings_pass():
    assert check_ids() == set()


def test_bad_sentiment_settings_are_reported(settings, tmp_path):
    settings.GOOGLE_NL_API_VERSION = "v3"
    settings.SENTIMENT_TIMEOUT = 0
    settings.GOOGLE_APPLICATION_CREDENTIALS = str(tmp_path / "missing.json")
    settings.GOOGLE_NL_API_KEY = "key"

    assert check_ids() == {"sentiment.E001", "sentiment.E002", "sentiment.W001", "sentiment.W002"}
