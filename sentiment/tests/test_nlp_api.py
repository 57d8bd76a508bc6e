"""Method nlp_api: the real google-cloud-language client against the local fake."""

import asyncio
import json

import pytest

from sentiment import analyze_message
from sentiment.analyzers import nlp_api
from sentiment.testing.fake_cloud_nl import FakeCloudNL

NOT_CONFIGURED = {
    "score": 0.0,
    "label": "Neutral",
    "emotion": "neutral",
    "source": "default",
    "details": {"error": "Google Cloud NLP not configured"},
}


async def test_not_configured_gives_the_contract_result():
    result = await analyze_message(method="nlp_api", text="I love this")

    assert result.to_stored() == NOT_CONFIGURED


async def test_score_and_magnitude_are_mapped_from_the_v2_api(cloud_nl):
    result = await analyze_message(method="nlp_api", text="I love this, it is great. The weather is bad.")

    assert result.to_stored() == {
        "score": 0.2,
        "label": "Positive",
        "emotion": None,
        "source": "nlp_api",
        "details": {"magnitude": 1.2, "service": "google_cloud_natural_language"},
    }
    (request,) = cloud_nl.analyze_requests
    assert request.path == "/v2/documents:analyzeSentiment"
    assert request.body == {
        "document": {"type": 1, "content": "I love this, it is great. The weather is bad."},
        "encodingType": 1,
    }
    assert "authorization" not in request.headers  # anonymous against an explicit endpoint


async def test_the_v1_api_can_be_chosen(cloud_nl, settings):
    settings.GOOGLE_NL_API_VERSION = "v1"

    result = await analyze_message(method="nlp_api", text="This is terrible and I hate it.")

    assert (result.score, result.label, result.emotion) == (-0.8, "Negative", None)
    assert [r.path for r in cloud_nl.analyze_requests] == ["/v1/documents:analyzeSentiment"]


async def test_the_score_sets_the_label_by_the_thresholds(cloud_nl):
    for score, label in [(0.65, "Positive"), (0.1, "Neutral"), (-0.3, "Negative")]:
        cloud_nl.set_result(score, magnitude=1.5)

        result = await analyze_message(method="nlp_api", text="Whatever.")

        assert (result.score, result.label, result.details["magnitude"]) == (score, label, 1.5)


async def test_an_api_key_is_sent_and_a_wrong_one_is_refused(settings):
    with FakeCloudNL(api_key="right-key") as fake:
        settings.GOOGLE_NL_API_ENDPOINT = fake.endpoint
        settings.GOOGLE_NL_API_KEY = "right-key"
        ok = await analyze_message(method="nlp_api", text="good")
        settings.GOOGLE_NL_API_KEY = "wrong-key"
        refused = await analyze_message(method="nlp_api", text="good")
    nlp_api.reset_clients()

    assert ok.label == "Positive"
    assert fake.analyze_requests[0].headers["x-goog-api-key"] == "right-key"
    assert refused.details == {"error": "auth"}


@pytest.mark.parametrize(
    ("failure", "reason", "attempts"),
    [
        ("500", "unavailable", 1),
        ("429", "rate_limited", 1),
        ("403", "auth", 1),
        ("400", "rejected", 1),
        ("malformed", "invalid_response", 1),
    ],
)
async def test_failures_give_the_marked_neutral_result(cloud_nl, failure, reason, attempts):
    cloud_nl.fail_next(failure)

    result = await analyze_message(method="nlp_api", text="I love it")

    assert result.to_stored() == {
        "score": 0.0,
        "label": "Neutral",
        "emotion": "neutral",
        "source": "default",
        "details": {"error": reason},
    }
    assert len(cloud_nl.analyze_requests) == attempts


async def test_a_brief_outage_is_retried(cloud_nl):
    cloud_nl.fail_next("503", times=2)

    result = await analyze_message(method="nlp_api", text="I love it")

    assert result.label == "Positive"
    assert len(cloud_nl.analyze_requests) == 3


async def test_a_lasting_outage_gives_up_within_the_retry_budget(cloud_nl, settings):
    settings.GOOGLE_NL_API_RETRY_TIMEOUT = 1.0
    cloud_nl.fail_next("503", times=1000)

    async with asyncio.timeout(20):  # doesn't hang
        result = await analyze_message(method="nlp_api", text="I love it")

    assert result.details == {"error": "unavailable"}
    assert 1 < len(cloud_nl.analyze_requests) < 1000


async def test_a_stalled_call_times_out(cloud_nl, settings):
    settings.GOOGLE_NL_API_TIMEOUT = 0.5
    cloud_nl.fail_next("stall")

    async with asyncio.timeout(20):
        result = await analyze_message(method="nlp_api", text="I love it")

    assert result.details == {"error": "timeout"}


async def test_the_overall_timeout_also_bounds_the_call(cloud_nl):
    cloud_nl.fail_next("stall")

    async with asyncio.timeout(20):
        result = await analyze_message(method="nlp_api", text="I love it", timeout=0.3)

    assert result.details == {"error": "timeout"}


async def test_a_slow_answer_still_counts(cloud_nl):
    cloud_nl.fail_next("slow")

    result = await analyze_message(method="nlp_api", text="I love it")

    assert result.label == "Positive"


async def test_a_marker_in_the_text_injects_a_failure(cloud_nl):
    result = await analyze_message(method="nlp_api", text="I love it [nl:500]")

    assert result.details == {"error": "unavailable"}


async def test_an_unreachable_endpoint_is_unavailable(settings):
    with FakeCloudNL() as fake:
        endpoint = fake.endpoint  # closed when the block ends
    settings.GOOGLE_NL_API_ENDPOINT = endpoint

    result = await analyze_message(method="nlp_api", text="I love it")
    nlp_api.reset_clients()

    assert result.details == {"error": "unavailable"}


async def test_one_client_per_configuration(cloud_nl):
    config = nlp_api.CloudNLConfig.from_settings()

    await analyze_message(method="nlp_api", text="good")
    await analyze_message(method="nlp_api", text="bad")

    assert nlp_api.get_client(config) is nlp_api.get_client(nlp_api.CloudNLConfig.from_settings())
    assert nlp_api._build_client.cache_info().currsize == 1


def test_configured_means_a_key_a_credentials_file_or_an_endpoint():
    assert not nlp_api.CloudNLConfig().configured
    assert nlp_api.CloudNLConfig(api_key="k").configured
    assert nlp_api.CloudNLConfig(credentials_file="/etc/lia/sa.json").configured
    assert nlp_api.CloudNLConfig(endpoint="http://127.0.0.1:1").configured


@pytest.fixture
def no_ambient_credentials(monkeypatch):
    """Ambient discovery would probe the GCE metadata server: it must never run."""
    import google.auth

    def refuse(*args, **kwargs):
        raise AssertionError("google.auth.default() was called")

    monkeypatch.setattr(google.auth, "default", refuse)


def service_account_file(tmp_path) -> str:
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "lia-test",
                "private_key_id": "test-key",
                "private_key": pem,
                "client_email": "lia@lia-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "http://127.0.0.1:9/token",  # never used: service accounts sign their own JWT
            }
        )
    )
    return str(path)


async def test_a_service_account_file_signs_the_requests(cloud_nl, settings, tmp_path, no_ambient_credentials):
    settings.GOOGLE_APPLICATION_CREDENTIALS = service_account_file(tmp_path)

    result = await analyze_message(method="nlp_api", text="I love it")

    assert result.label == "Positive"
    assert cloud_nl.analyze_requests[0].headers["authorization"].startswith("Bearer ey")


@pytest.mark.parametrize("content", [None, "{not json", '{"type": "external_account"}'])
async def test_an_unusable_credentials_file_is_an_auth_failure(
    cloud_nl, settings, tmp_path, no_ambient_credentials, content
):
    path = tmp_path / "credentials.json"
    if content is not None:
        path.write_text(content)
    settings.GOOGLE_APPLICATION_CREDENTIALS = str(path)

    result = await analyze_message(method="nlp_api", text="I love it")

    assert result.details == {"error": "auth"}
    assert cloud_nl.analyze_requests == []


async def test_anonymous_and_api_key_clients_skip_ambient_discovery(cloud_nl, settings, no_ambient_credentials):
    anonymous = await analyze_message(method="nlp_api", text="good")
    settings.GOOGLE_NL_API_KEY = "some-key"
    with_key = await analyze_message(method="nlp_api", text="good")

    assert (anonymous.label, with_key.label) == ("Positive", "Positive")
