"""Chat endpoints (CONTRACT §6, §7): the SSE stream, history, detail, rename and deletes."""

import uuid
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import session_ended
from accounts.exceptions import TokenRejected
from accounts.fields import StrictCharField, plain_text
from accounts.ratelimit import Decision, rate_limit_check, rate_limit_refund
from conversations.budget import daily_token_budget_check
from conversations.exceptions import NoMessageContent
from conversations.models import Conversation, Message
from conversations.selectors import conversation_get_for_user, conversation_list, conversation_messages_page
from conversations.services import conversation_delete, conversation_delete_all, conversation_rename, turn_start
from conversations.streaming import ChatTurnResponse, TurnPlan
from llm import ChatOptions, provider_names
from sentiment import DEFAULT_METHOD, METHODS

MESSAGE_MAX_CHARS = 10_000


class StrictFloatField(serializers.FloatField):
    """JSON numbers (integers included, CONTRACT §7.3), never booleans or strings."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool | str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """JSON integers, never booleans or strings."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool | str):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter. `?limit=` is a wrong value (422), not a missing one: DRF would
    otherwise read an empty form value as absent and apply the default."""

    def get_value(self, dictionary: Any) -> Any:
        if dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


def _one_of(value: str, allowed: list[str] | tuple[str, ...]) -> str:
    if value not in allowed:
        raise serializers.ValidationError(f"Input should be {' or '.join(repr(a) for a in allowed)}")
    return value


class ModelSettingsSerializer(serializers.Serializer):
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=32_000)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    frequency_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0)
    presence_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0)


def _plain_part(part: Any) -> dict[str, Any] | None:
    """A message part as MessagePartSerializer would validate it, when it is plainly valid (a
    `type` string, a `text` string within the limit, or null, or absent; no NUL, no unpaired
    surrogate); otherwise None, and the serializer says what is wrong."""
    if type(part) is not dict:
        return None
    kind = part.get("type")
    if type(kind) is not str or not plain_text(kind):
        return None
    if "text" not in part:
        return {"type": kind}
    text = part["text"]
    if text is None or (type(text) is str and len(text) <= MESSAGE_MAX_CHARS and plain_text(text)):
        return {"type": kind, "text": text}
    return None


class MessagePartListSerializer(serializers.ListSerializer):
    """A message's parts, each plainly valid one checked in plain Python (found by a security
    audit: DRF's serializer takes ~8 us a part, and `parts` has no limit in CONTRACT §7.4, so a
    1 MB body of 80,000 parts held a worker's CPU, and with it every open stream's, for 0.7 s
    before the rate limit could count it; now ~0.06 s). Any other part goes through the
    serializer, so its errors are the serializer's own."""

    def run_child_validation(self, data: Any) -> Any:
        plain = _plain_part(data)
        return super().run_child_validation(data) if plain is None else plain


class MessagePartSerializer(serializers.Serializer):
    type = StrictCharField(allow_blank=True, trim_whitespace=False)
    text = StrictCharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False, max_length=MESSAGE_MAX_CHARS
    )

    class Meta:
        list_serializer_class = MessagePartListSerializer


class UIMessageSerializer(serializers.Serializer):
    """An AI-SDK UI message (CONTRACT §7.4): any strings, compared as sent."""

    id = StrictCharField(max_length=200, allow_blank=True, trim_whitespace=False)
    role = StrictCharField(max_length=50, allow_blank=True, trim_whitespace=False)
    parts = MessagePartSerializer(many=True)


def extract_text(data: dict[str, Any]) -> str:
    """CONTRACT §7.5: `message`, else the text parts of the last user item of `messages`
    joined by a space; "" when there is none."""
    if data.get("message"):
        return data["message"]
    for item in reversed(data.get("messages") or []):
        if item["role"] == "user":
            return " ".join(part["text"] for part in item["parts"] if part["type"] == "text" and part.get("text"))
    return ""


def message_text(data: dict[str, Any]) -> str:
    text = extract_text(data)
    if not text:
        raise NoMessageContent()
    return text


class ChatStreamApi(APIView):
    # The token's session is checked by the turn's write-ahead, in the same statement on
    # PostgreSQL: one round trip fewer before every reply (README "Performance", change 27).
    checks_session_itself_on = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        message = StrictCharField(
            required=False,
            max_length=MESSAGE_MAX_CHARS,
            trim_whitespace=False,
            error_messages={
                "blank": "String should have at least 1 character",
                "max_length": f"String should have at most {MESSAGE_MAX_CHARS} characters",
            },
        )
        messages = UIMessageSerializer(many=True, required=False, max_length=50)
        # Any string: a malformed id is "not found" (404, CONTRACT §7.6), not a validation error;
        # untrimmed, so that whitespace is such an id, not the "" of a new conversation.
        conversation_id = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
        provider = StrictCharField(required=False, max_length=64)
        model = StrictCharField(required=False, max_length=200)
        sentiment_method = StrictCharField(required=False)
        model_settings = ModelSettingsSerializer(required=False, allow_null=True)
        # The AI SDK's chat id and trigger (CONTRACT §7.2): strings, accepted and ignored.
        id = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
        trigger = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)

        def validate_provider(self, value: str) -> str:
            return _one_of(value, provider_names())

        def validate_sentiment_method(self, value: str) -> str:
            return _one_of(value, METHODS)

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            if not data.get("message") and len(extract_text(data)) > MESSAGE_MAX_CHARS:
                raise serializers.ValidationError(
                    {"messages": [f"The message text should have at most {MESSAGE_MAX_CHARS} characters"]}
                )
            return data

    def post(self, request: Request) -> ChatTurnResponse:
        claims = request.user.claims
        counted: Decision | None = None  # this attempt, as the chat rate limit counted it
        try:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            counted = rate_limit_check(
                scope="chat", key=str(claims.user_id), limit=settings.RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE
            )
            if not counted.allowed:
                raise Throttled(wait=counted.retry_after)
            daily_token_budget_check(user_id=claims.user_id)
            data = serializer.validated_data
            text = message_text(data)
            provider = data.get("provider") or settings.DEFAULT_LLM_PROVIDER
            model = data.get("model") or settings.DEFAULT_LLM_MODEL
            turn = turn_start(
                claims=claims, conversation_id=data.get("conversation_id"), text=text, provider=provider, model=model
            )
        except Exception as exc:
            if isinstance(exc, DatabaseError) and not isinstance(exc, IntegrityError | DataError):
                # The database is unavailable: a 503 that says nothing about the user, and
                # checking the session would wait for the database again.
                raise
            # Whatever the refusal, a token whose session has ended gets the 401 that every other
            # endpoint gives it, and spends nothing of its user's rate limit. (turn_start checks
            # the session before anything else it refuses; the other refusals come before it.)
            ended = exc if isinstance(exc, TokenRejected) else session_ended(claims)
            if ended is None:
                raise
            if counted is not None:
                rate_limit_refund(counted)
            raise AuthenticationFailed(str(ended)) from exc
        # The stream must not pin a pooled connection while the provider talks (the final save
        # takes one again for a moment).
        if not connection.in_atomic_block:
            connection.close()
        model_settings = {k: v for k, v in (data.get("model_settings") or {}).items() if v is not None}
        plan = TurnPlan(
            turn=turn,
            text=text,
            provider=provider,
            model=model,
            options=ChatOptions(
                model=model,
                temperature=model_settings.get("temperature", 0.7),
                max_tokens=model_settings.get("max_tokens", 2048),
                top_p=model_settings.get("top_p"),
                frequency_penalty=model_settings.get("frequency_penalty"),
                presence_penalty=model_settings.get("presence_penalty"),
                system_prompt=settings.CHAT_SYSTEM_PROMPT,
            ),
            sentiment_method=data.get("sentiment_method") or DEFAULT_METHOD,
        )
        return ChatTurnResponse(plan)


# Offsets past the database's 64-bit integers can't be queried (they were a 500).
MAX_OFFSET = 2**63 - 1


class PageSerializer(serializers.Serializer):
    offset = QueryIntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)


class HistoryApi(APIView):
    class InputSerializer(PageSerializer):
        limit = QueryIntegerField(required=False, min_value=1, max_value=100, default=20)

    class OutputSerializer(serializers.ModelSerializer):
        id = serializers.CharField()
        message_count = serializers.IntegerField()

        class Meta:
            model = Conversation
            fields = ["id", "title", "created_at", "updated_at", "message_count"]

    def get(self, request: Request) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        conversations = conversation_list(user=request.user, **query.validated_data)
        return Response(self.OutputSerializer(conversations, many=True).data)


def _conversation_id(value: str) -> uuid.UUID:
    """Path ids must be UUIDs (422 otherwise, CONTRACT §6.2)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise serializers.ValidationError({"conversation_id": ["Input should be a valid UUID"]}) from None


class MessageOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", "role", "content", "sentiment_data", "model_info", "created_at", "status"]


class ConversationApi(APIView):
    class InputSerializer(PageSerializer):
        limit = QueryIntegerField(required=False, min_value=1, max_value=200, default=50)

    def get(self, request: Request, conversation_id: str) -> Response:
        parsed = _conversation_id(conversation_id)
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        offset, limit = query.validated_data["offset"], query.validated_data["limit"]
        conversation = conversation_get_for_user(user=request.user, conversation_id=parsed)
        page = conversation_messages_page(conversation=conversation, offset=offset, limit=limit)
        timestamps = serializers.DateTimeField()
        return Response(
            {
                "id": str(conversation.pk),
                "title": conversation.title,
                "created_at": timestamps.to_representation(conversation.created_at),
                "updated_at": timestamps.to_representation(conversation.updated_at),
                "total_messages": page.total,
                "limit": limit,
                "offset": offset,
                "has_more": offset + len(page.messages) < page.total,
                "messages": MessageOutputSerializer(page.messages, many=True).data,
            }
        )

    def delete(self, request: Request, conversation_id: str) -> Response:
        conversation_delete(user=request.user, conversation_id=_conversation_id(conversation_id))
        return Response({"success": True, "message": "Conversation deleted successfully", "deleted_count": None})


class ConversationsApi(APIView):
    def delete(self, request: Request) -> Response:
        count = conversation_delete_all(user=request.user)
        return Response({"success": True, "message": f"Deleted {count} conversation(s)", "deleted_count": count})


class RenameApi(APIView):
    class InputSerializer(serializers.Serializer):
        title = StrictCharField(min_length=1, max_length=255, trim_whitespace=False)

    def patch(self, request: Request, conversation_id: str) -> Response:
        parsed = _conversation_id(conversation_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation_rename(user=request.user, conversation_id=parsed, title=serializer.validated_data["title"])
        return Response({"success": True, "message": "Conversation renamed successfully"})
