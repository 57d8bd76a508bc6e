"""GET /api/v1/chat/methods (CONTRACT §6.7): the sentiment method ids, a bare array."""

from typing import Any

from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sentiment.services import METHODS


class MethodsApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response(list(METHODS))
