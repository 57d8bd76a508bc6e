"""The fake itself, over plain HTTP: what other apps' tests may rely on."""

import json
import urllib.error
import urllib.request

import pytest


def post(endpoint: str, path: str, body: object) -> tuple[int, dict]:
    assert endpoint.startswith("http://127.0.0.1:")
    request = urllib.request.Request(  # noqa: S310 (the loopback fake, checked above)
        endpoint + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_enum_names_are_accepted_and_v1_answers_with_language(cloud_nl_fake):
    status, body = post(
        cloud_nl_fake.endpoint,
        "/v1/documents:analyzeSentiment",
        {"document": {"type": "PLAIN_TEXT", "content": "Great work. Bad weather!"}, "encodingType": "UTF8"},
    )

    assert status == 200
    assert body["documentSentiment"] == {"magnitude": 0.8, "score": 0.0}
    assert body["language"] == "en"
    assert [s["text"] for s in body["sentences"]] == [
        {"content": "Great work.", "beginOffset": 0},
        {"content": "Bad weather!", "beginOffset": 12},
    ]


def test_v2_answers_with_language_code(cloud_nl_fake):
    status, body = post(
        cloud_nl_fake.endpoint, "/v2/documents:analyzeSentiment", {"document": {"type": 1, "content": "ok"}}
    )

    assert status == 200
    assert (body["languageCode"], body["languageSupported"]) == ("en", True)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v2/documents:analyzeSentiment", {"document": {"type": 1, "content": ""}}, 400),
        ("/v2/documents:analyzeSentiment", {"document": {"type": 9, "content": "hi"}}, 400),
        ("/v2/documents:analyzeEntities", {"document": {"type": 1, "content": "hi"}}, 404),
    ],
)
def test_bad_requests_get_google_error_bodies(cloud_nl_fake, path, body, status):
    code, answer = post(cloud_nl_fake.endpoint, path, body)

    assert code == status
    assert answer["error"]["code"] == status


def test_requests_are_recorded(cloud_nl_fake):
    post(cloud_nl_fake.endpoint, "/v2/documents:analyzeSentiment", {"document": {"type": 1, "content": "hi"}})

    (request,) = cloud_nl_fake.requests
    assert (request.method, request.version, request.content) == ("POST", "v2", "hi")


def test_an_unknown_failure_kind_is_refused(cloud_nl_fake):
    with pytest.raises(ValueError, match="unknown failure"):
        cloud_nl_fake.fail_next("418")
