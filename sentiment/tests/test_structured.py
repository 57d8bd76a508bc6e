import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentiment import STRUCTURED_INSTRUCTIONS, STRUCTURED_SCHEMA, Sentiment, StructuredReplyDecoder

REPLY = 'Hi **there**!\n\n- "quoted" \\ back/slash\ttab\n- café 😀 naïve\n\n```py\nprint({"a": [1]})\n```'
SENTIMENT = {"score": 0.8, "label": "Positive", "emotion": "friendly"}
EXPECTED = Sentiment(score=0.8, label="Positive", emotion="friendly", source="structured")


def decode(pieces: list[str]) -> tuple[str, list[str], Sentiment]:
    decoder = StructuredReplyDecoder()
    outputs = [decoder.feed(piece) for piece in pieces]
    outputs.append(decoder.flush())  # the stream ends
    assert decoder.reply_text == "".join(outputs)
    return "".join(outputs), outputs, decoder.finish()


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *cuts})
    return [text[a:b] for a, b in itertools.pairwise(points)]


DOCUMENTS = {
    "compact": json.dumps({"reply": REPLY, "sentiment": SENTIMENT}, ensure_ascii=False, separators=(",", ":")),
    "ascii escapes": json.dumps({"reply": REPLY, "sentiment": SENTIMENT}),
    "pretty, sentiment first": json.dumps({"sentiment": SENTIMENT, "reply": REPLY}, indent=2),
    "extra keys": json.dumps(
        {
            "meta": {"reply": "not this", "list": [1, -2.5e3, True, None, {"x": "]}"}]},
            "reply": REPLY,
            "sentiment": SENTIMENT,
        }
    ),
    "odd whitespace": '\n  { "reply" :\t' + json.dumps(REPLY) + ' ,\r\n "sentiment":' + json.dumps(SENTIMENT) + " }\n",
}


def test_every_truncation_emits_only_a_prefix_of_the_reply_and_falls_back():
    document = DOCUMENTS["ascii escapes"]
    for cut in range(len(document)):
        text, _, sentiment = decode([document[:cut]])

        assert REPLY.startswith(text), f"cut at {cut}"
        assert sentiment.source == "default"
        assert sentiment.details == {"error": "truncated" if document[:cut].strip() else "empty"}


def test_reply_text_arrives_as_it_is_generated():
    decoder = StructuredReplyDecoder()

    assert decoder.feed('{"reply": "Hel') == "Hel"
    assert decoder.feed("lo\\") == "lo"
    assert decoder.feed("n wor") == "\n wor"
    assert decoder.feed("ld\\u00") == "ld"
    assert decoder.feed("e9 \\ud83d") == "é "
    assert decoder.feed('\\ude00", "sentiment": {"score": -0.5}}') == "😀"
    assert decoder.finish() == Sentiment(score=-0.5, label="Negative", emotion=None, source="structured")


def test_plain_text_passes_through_and_falls_back_to_neutral():
    text, _, sentiment = decode(["  \n", "Sure! Here is", " **markdown** {not json}"])

    assert text == "  \nSure! Here is **markdown** {not json}"
    assert sentiment.to_stored() == {
        "score": 0.0,
        "label": "Neutral",
        "emotion": "neutral",
        "source": "default",
        "details": {"error": "not_json"},
    }


@pytest.mark.parametrize(
    ("document", "reply", "error"),
    [
        ("", "", "empty"),
        ('{"reply": "ok"}', "ok", "missing_sentiment"),
        ('{"reply": "ok", "sentiment": "happy"}', "ok", "invalid_sentiment"),
        ('{"reply": "ok", "sentiment": {"mood": 1}}', "ok", "invalid_sentiment"),
        ('{"reply": "ok" "sentiment": {}}', "ok", "invalid_json"),
        ('{"reply": "ok\\x", "sentiment": {"score": 1}}', "ok", "invalid_json"),
        ('{"reply": "ok", "sentiment": {"score": 1}, "n": 01}', "ok", "invalid_json"),
        ('{"reply": "ok", "sentiment": {"score": 1', "ok", "truncated"),
        ("[1, 2]", "[1, 2]", "not_json"),  # not an object: the model ignored the format
    ],
)
def test_broken_documents_fall_back_and_never_leak_syntax(document, reply, error):
    text, _, sentiment = decode([document])

    assert text == reply
    assert (sentiment.source, sentiment.details) == ("default", {"error": error})


def test_the_sentiment_is_normalised():
    _, _, sentiment = decode(['{"reply": "x", "sentiment": {"score": "5", "label": "POSITIVE ", "emotion": " Glad "}}'])

    assert sentiment == Sentiment(score=1.0, label="Positive", emotion="glad", source="structured")


def test_only_the_first_top_level_reply_is_streamed():
    text, _, _ = decode(['{"reply": "one", "sentiment": {"reply": "nested"}, "reply": "two"}'])

    assert text == "one"


def test_a_non_string_reply_streams_nothing():
    text, _, sentiment = decode(['{"reply": null, "sentiment": {"score": 0.5}}'])

    assert text == ""
    assert sentiment.label == "Positive"


def test_lone_surrogates_become_replacement_characters():
    text, _, _ = decode(['{"reply": "a\\ud83db\\ude00c\\ud83d", "sentiment": {"score": 0}}'])

    assert text == "a\ufffdb\ufffdc\ufffd"


def test_raw_control_characters_inside_the_reply_are_tolerated():
    text, _, sentiment = decode(['{"reply": "line one\nline two", "sentiment": {"score": 0.2}}'])

    assert text == "line one\nline two"
    assert sentiment.source == "structured"


def test_text_after_the_document_is_ignored():
    text, _, sentiment = decode(['{"reply": "hi", "sentiment": {"score": 0.2}}\n```'])

    assert text == "hi"
    assert sentiment.source == "structured"


# Servers that ignore `response_format` often wrap the document in a Markdown code fence.
COMPACT = DOCUMENTS["compact"]
FENCED = {
    "json tag": f"```json\n{COMPACT}\n```",
    "no tag": f"```\n{COMPACT}\n```\n",
    "upper-case tag, leading blank lines, CRLF": f"\n \n```JSON\r\n{DOCUMENTS['pretty, sentiment first']}\r\n```",
    "tag, then the document on the same line": f"  ```json {DOCUMENTS['ascii escapes']}```",
    "four backticks, no closing fence": f"````json\n\n{DOCUMENTS['extra keys']}",
}


# Every document, bare or in a fence (servers that ignore `response_format` add one).
EVERY_DOCUMENT = {**DOCUMENTS, **{f"fenced: {name}": document for name, document in FENCED.items()}}


@pytest.mark.parametrize("name", EVERY_DOCUMENT)
def test_a_document_split_at_every_position_streams_exactly_the_reply(name):
    document = EVERY_DOCUMENT[name]
    for cut in range(len(document) + 1):
        text, _, sentiment = decode([document[:cut], document[cut:]])

        assert text == REPLY, f"cut at {cut}"
        assert sentiment == EXPECTED


@pytest.mark.parametrize("name", EVERY_DOCUMENT)
def test_a_document_fed_one_character_at_a_time(name):
    text, outputs, sentiment = decode(list(EVERY_DOCUMENT[name]))

    assert text == REPLY
    assert sentiment == EXPECTED
    assert "{" not in "".join(outputs[:5])


def test_reply_text_after_a_fence_arrives_as_it_is_generated():
    decoder = StructuredReplyDecoder()

    assert decoder.feed("\n``") == ""
    assert decoder.feed("`js") == ""
    assert decoder.feed("on\n") == ""
    assert decoder.feed('{"reply": "Hel') == "Hel"
    assert decoder.feed('lo", "sentiment": {"score": 0.5}}\n`') == "lo"
    assert decoder.feed("``") == ""
    assert decoder.flush() == ""
    assert decoder.finish() == Sentiment(score=0.5, label="Positive", emotion=None, source="structured")


@pytest.mark.parametrize(
    "text",
    [
        "```python\nprint({'a': 1})\n```",
        "```\nplain text in a fence\n```",
        "```json\n[1, 2]\n```",  # a fenced document, but not an object
        "```json\nnot json\n```",
        "`inline` code and ``more``",
        "``not a fence``",
        "  ```",  # the stream ends while it could still open a document: held back, then the reply
        "```json\n  ",
        "```" + "x" * 40 + "\n{}",  # not a language tag
        "```js\n{ let x = 1; }\n```\nThat block scopes x.",  # code opening with `{`: a review lost it
        "```go\nfunc main() {}\n```",
        "```jsx\n{items}\n```",
    ],
)
def test_text_that_only_starts_like_a_fence_is_the_reply_unchanged(text):
    for cut in range(len(text) + 1):
        reply, _, sentiment = decode([text[:cut], text[cut:]])

        assert reply == text, f"cut at {cut}"
        assert (sentiment.source, sentiment.details) == ("default", {"error": "not_json"})


def test_every_truncation_of_a_fenced_document_emits_only_a_prefix_of_the_reply():
    document = FENCED["json tag"]
    for cut in range(document.index("{") + 1, len(document) - len("\n```")):
        text, _, sentiment = decode([document[:cut]])

        assert REPLY.startswith(text), f"cut at {cut}"
        assert sentiment.details == {"error": "truncated"}


def test_schema_and_instructions_put_the_reply_first():
    assert list(STRUCTURED_SCHEMA["properties"]) == ["reply", "sentiment"]
    assert STRUCTURED_SCHEMA["required"] == ["reply", "sentiment"]
    assert STRUCTURED_SCHEMA["properties"]["sentiment"]["required"] == ["score", "label", "emotion"]
    assert STRUCTURED_INSTRUCTIONS.index('"reply"') < STRUCTURED_INSTRUCTIONS.index('"sentiment"')


sentiments = st.fixed_dictionaries(
    {
        "score": st.floats(min_value=-1, max_value=1, allow_nan=False),
        "label": st.sampled_from(["Positive", "Negative", "Neutral"]),
        "emotion": st.text(alphabet=st.characters(categories=["Ll"]), min_size=1, max_size=12),
    }
)


@settings(max_examples=300)
@given(
    reply=st.text(),
    sentiment=sentiments,
    extra=st.dictionaries(st.text(max_size=5).filter(lambda k: k not in ("reply", "sentiment")), st.text(max_size=5)),
    reply_first=st.booleans(),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_document_split_anywhere_decodes_to_the_reply(
    reply, sentiment, extra, reply_first, ensure_ascii, indent, cuts
):
    fields = [("reply", reply), ("sentiment", sentiment)]
    document = json.dumps(
        dict(list(extra.items()) + (fields if reply_first else fields[::-1])), ensure_ascii=ensure_ascii, indent=indent
    )

    text, _, result = decode(split_at(document, [c % (len(document) + 1) for c in cuts]))

    assert text == reply
    assert result.source == "structured"
    assert result.label == sentiment["label"]
    assert result.score == round(sentiment["score"], 4)


@settings(max_examples=300)
@given(
    reply=st.text(),
    sentiment=sentiments,
    before=st.text(alphabet=" \n\t", max_size=3),
    fence=st.sampled_from(["```", "````"]),
    tag=st.sampled_from(["", "json", "JSON", "json5"]),
    after_tag=st.sampled_from(["\n", "\r\n", " ", "", "\n\n  "]),
    closing=st.sampled_from(["", "\n```", "\n```\n", "```"]),
    indent=st.sampled_from([None, 2]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_fenced_document_split_anywhere_decodes_to_the_reply(
    reply, sentiment, before, fence, tag, after_tag, closing, indent, cuts
):
    document = json.dumps({"reply": reply, "sentiment": sentiment}, indent=indent)
    fenced = f"{before}{fence}{tag}{after_tag}{document}{closing}"

    text, _, result = decode(split_at(fenced, [c % (len(fenced) + 1) for c in cuts]))

    assert text == reply
    assert result.source == "structured"
    assert result.label == sentiment["label"]


@settings(max_examples=200)
@given(reply=st.text(min_size=1), data=st.data())
def test_any_truncated_document_emits_only_a_prefix_of_the_reply(reply, data):
    document = json.dumps({"reply": reply, "sentiment": SENTIMENT}, ensure_ascii=data.draw(st.booleans()))
    cut = data.draw(st.integers(min_value=0, max_value=len(document) - 1))

    text, _, result = decode(split_at(document[:cut], data.draw(st.lists(st.integers(0, cut), max_size=6))))

    assert reply.startswith(text)
    assert result.source == "default"
