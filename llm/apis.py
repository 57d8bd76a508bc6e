"""GET /api/v1/chat/models (CONTRACT §6.6): public, the catalogue as is."""

from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llm.catalogue import model_catalogue


class ModelListApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response(model_catalogue())
