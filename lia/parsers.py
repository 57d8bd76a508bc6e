import codecs
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser


class JSONParser(DRFJSONParser):
    """DRF's JSON parser, plus a 422 (not a 500) for absurdly deep nesting (RecursionError is
    not a ValueError, so DRF lets it through), and a UTF-8 body's leading byte order mark
    skipped, as RFC 8259 §8.1 allows and the FastAPI backend did (its json.loads of the body's
    bytes skips one): a body read from a file saved as "UTF-8 with BOM" carries one, and DRF's
    decoding made it a 422 "JSON decode error"."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        context = dict(parser_context or {})
        if codecs.lookup(context.get("encoding") or settings.DEFAULT_CHARSET).name == "utf-8":
            context["encoding"] = "utf-8-sig"  # UTF-8, without the BOM if there is one
        try:
            return super().parse(stream, media_type, context)
        except RecursionError as exc:
            raise ParseError("JSON decode error") from exc
