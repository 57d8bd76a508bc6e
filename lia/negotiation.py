from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JSONContentNegotiation(DefaultContentNegotiation):
    """JSON in, JSON out, whatever the client asks for.

    A body without Content-Type is parsed as JSON (CONTRACT §3.6); another Content-Type is
    a 415. Responses never fail negotiation with a 406: the API speaks JSON (and the chat
    stream its event stream), so the Accept header has nothing to choose between.
    """

    def select_parser(self, request: Request, parsers: list[BaseParser]) -> BaseParser | None:
        if not request.content_type:
            return parsers[0]
        return super().select_parser(request, parsers)

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        renderer = renderers[0]
        return renderer, renderer.media_type
