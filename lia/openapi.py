"""The OpenAPI description of Lia's HTTP API, exactly as CONTRACT.md defines the wire.

Served at GET /api/v1/schema (JSON, or YAML with `?format=yaml`) and rendered at /api/v1/docs
(Swagger UI) and /api/v1/docs/redoc, all public. drf-spectacular walks the URLconf and the DRF
views; this module, the composition root's, adds what introspection can't know: the error
shapes of lia.errors, the bounds the views check by hand, the event stream, and the health
endpoints (plain async Django views). The apps stay free of it (they may not import `lia`).

OpenAPI 3.1, so that nullable values are JSON Schema type lists and each event of the chat
stream is described by a JSON Schema whose `data` is a JSON document (`contentSchema`).
`lia/tests/test_openapi.py` runs schemathesis against this description and the running app.
"""

import copy
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

Schema = dict[str, Any]

# --- Building blocks -----------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], *, required: list[str] | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    schema["required"] = list(properties) if required is None else required
    if not schema["required"]:
        del schema["required"]
    return schema


def nullable(schema: Schema) -> Schema:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


# PostgreSQL can't store NUL in text; every string input refuses it (accounts.fields).
NO_NUL = r"^[^\u0000]*$"
TIMESTAMP: Schema = {
    "type": "string",
    "format": "date-time",
    # CONTRACT §2.4: always with a UTC designator.
    "pattern": r"(Z|[+-]00:00)$",
}
# CONTRACT §2.3: the canonical lower-case form, everywhere.
UUID: Schema = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
}


def text(min_length: int | None = None, max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", "pattern": NO_NUL, **extra}
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


# CONTRACT §5.1: 8-100 characters with an ASCII upper-case letter, a lower-case letter and a digit
# (in any order; spelled out without look-aheads, which test-data generators can't satisfy).
_CLASSES = ("[A-Z]", "[a-z]", "[0-9]")
_ORDERS = [(a, b, c) for a in _CLASSES for b in _CLASSES for c in _CLASSES if len({a, b, c}) == 3]
PASSWORD_RULE = "|".join(r"[\s\S]*".join(order) for order in _ORDERS)


SENTIMENT_EVENT: Schema = obj(
    {
        "score": {"type": "number", "minimum": -1, "maximum": 1},
        "label": {"type": "string", "enum": ["Positive", "Negative", "Neutral"]},
        "emotion": {"type": ["string", "null"]},
        "summary": {"type": "string", "minLength": 1},
    },
    required=["score", "label", "emotion"],
)
SENTIMENT_STORED: Schema = {
    **SENTIMENT_EVENT,
    "properties": {
        **SENTIMENT_EVENT["properties"],
        "source": {"type": "string"},
        "details": {"type": "object"},
    },
}

ERROR_DETAILS_DESCRIPTION = "Optional structured details (CONTRACT §4.1)."

COMPONENTS: dict[str, Schema] = {
    # --- errors (CONTRACT §4) ---
    "Error": obj(
        {
            "error": obj(
                {
                    "message": {"type": "string", "minLength": 1, "description": "A sentence a user can read."},
                    "details": {"type": "object", "description": ERROR_DETAILS_DESCRIPTION},
                },
                required=["message"],
            )
        },
        description='Every handled error: `{"error": {"message": ..., "details"?: {...}}}`.',
    ),
    "RateLimitError": obj(
        {
            "error": obj(
                {
                    "message": {"type": "string", "const": "Rate limit exceeded. Please try again later."},
                    "details": obj({"retry_after": {"type": "integer", "minimum": 1}}),
                }
            )
        },
        description="429: the real wait in seconds, the same as the Retry-After header (CONTRACT §4.5).",
    ),
    "ChatLimitError": obj(
        {
            "error": obj(
                {
                    "message": {"type": "string", "minLength": 1, "description": "A sentence a user can read."},
                    "details": obj({"retry_after": {"type": "integer", "minimum": 1}}),
                }
            )
        },
        description=(
            "429 from the chat stream: the rate limit (CONTRACT §4.5), too many replies streaming at once, or "
            "the daily token budget spent (then the wait runs to midnight UTC). The wait in seconds is the "
            "same as the Retry-After header."
        ),
    ),
    "InternalError": obj(
        {
            "error": obj(
                {
                    "message": {"type": "string", "const": "An internal error occurred. Please try again later."},
                    "details": obj({"request_id": {"type": "string"}}),
                },
                required=["message"],
            )
        },
        description="500: never a stack trace; `details.request_id` matches the X-Request-ID header and the logs.",
    ),
    "ValidationError": obj(
        {
            "error": obj(
                {
                    "message": {"type": "string", "minLength": 1},
                    "details": obj(
                        {
                            "errors": {
                                "type": "array",
                                "minItems": 1,
                                "items": obj({"field": {"type": "string"}, "message": {"type": "string"}}),
                            }
                        }
                    ),
                }
            ),
            "detail": {
                "type": "array",
                "minItems": 1,
                "items": {
                    **obj(
                        {
                            "type": {"type": "string", "minLength": 1},
                            "loc": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": ["string", "integer"]},
                                "description": '`"body"`, `"query"` or `"path"`, then the field\'s path.',
                            },
                            "msg": {"type": "string", "minLength": 1},
                        }
                    ),
                    # CONTRACT §4.4: the submitted value is never echoed back.
                    "not": {"required": ["input"]},
                },
            },
        },
        description="422: the envelope for the web client and FastAPI's `detail` list (CONTRACT §4.4).",
    ),
    # --- auth (CONTRACT §5) ---
    "RegisterRequest": obj(
        {
            "email": {"type": "string", "format": "email", "maxLength": 255},
            "username": {"type": "string", "minLength": 3, "maxLength": 50, "pattern": "^[a-zA-Z0-9_-]+$"},
            "password": {
                "type": "string",
                "minLength": 8,
                "maxLength": 100,
                "allOf": [{"pattern": PASSWORD_RULE}, {"pattern": NO_NUL}],
                "description": "8-100 characters, with an ASCII upper-case letter, a lower-case letter and a digit.",
            },
        },
        description="Unknown fields are ignored.",
    ),
    "LoginRequest": obj(
        {
            "email": {"type": "string", "format": "email", "maxLength": 255},
            "password": text(),
        },
        description="Unknown fields are ignored.",
    ),
    "User": obj(
        {
            "id": {"type": "integer", "minimum": 1},
            "email": {"type": "string"},
            "username": {"type": "string", "minLength": 1},
            "created_at": TIMESTAMP,
        }
    ),
    "TokenResponse": obj(
        {
            "access_token": {"type": "string", "minLength": 1, "description": "The JWT; the same value as the cookie."},
            "token_type": {"type": "string", "const": "bearer"},
            "expires_in": {"type": "integer", "minimum": 1, "description": "Seconds; the cookie's Max-Age."},
            "user": ref("User"),
        }
    ),
    "LogoutResponse": obj({"message": {"type": "string", "const": "Logged out"}}),
    # --- chat (CONTRACT §6, §7) ---
    "ModelSettings": obj(
        {
            "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2, "default": 0.7},
            "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 32000, "default": 2048},
            "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
            "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        },
        required=[],
        description="Any field may be omitted or null: its default applies (CONTRACT §7.3).",
    ),
    "UIMessage": obj(
        {
            "id": text(max_length=200),
            "role": text(max_length=50),
            "parts": {
                "type": "array",
                "items": obj(
                    {"type": text(), "text": nullable(text(max_length=10000))},
                    required=["type"],
                ),
            },
        },
        description="An AI-SDK UI message (CONTRACT §7.4). Only the text parts of the last `user` item are used.",
    ),
    "ChatStreamRequest": obj(
        {
            "message": text(1, 10000, description="The user's message, used verbatim."),
            "messages": {"type": "array", "maxItems": 50, "items": ref("UIMessage")},
            "conversation_id": nullable(
                text(
                    max_length=100,
                    description="Absent, null or empty: a new conversation. Otherwise one of the caller's "
                    "conversations; anything else is a 404 before the stream starts.",
                )
            ),
            "provider": {"type": "string", "description": "A configured provider (see GET /api/v1/chat/models)."},
            "model": text(1, 200, description="Free text, not validated before streaming."),
            "sentiment_method": {"type": "string", "description": "See GET /api/v1/chat/methods."},
            "model_settings": nullable(ref("ModelSettings")),
            "id": nullable({"type": "string", "description": "AI-SDK chat id: accepted and ignored."}),
            "trigger": nullable({"type": "string", "description": "AI-SDK trigger: accepted and ignored."}),
        },
        required=[],
        description="`message` or `messages` carries the text (no text at all is a 400). Unknown fields are ignored.",
    ),
    "ConversationSummary": obj(
        {
            "id": UUID,
            "title": {"type": ["string", "null"]},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "message_count": {"type": "integer", "minimum": 0},
        }
    ),
    "Sentiment": SENTIMENT_STORED,
    "Message": obj(
        {
            "id": {"type": "integer", "minimum": 1},
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"type": "string"},
            "sentiment_data": nullable(
                obj({"message": nullable(ref("Sentiment")), "cumulative": nullable(ref("Sentiment"))}, required=[])
            ),
            "model_info": nullable(
                obj(
                    {
                        "provider": {"type": "string"},
                        "model": {"type": "string"},
                        "thoughts": {"type": ["array", "null"], "items": {"type": "string"}},
                    },
                    required=["provider", "model"],
                )
            ),
            "created_at": TIMESTAMP,
            "status": {"type": "string", "enum": ["streaming", "complete", "interrupted", "failed"]},
        },
        required=["id", "role", "content", "sentiment_data", "model_info", "created_at"],
    ),
    "ConversationDetail": obj(
        {
            "id": UUID,
            "title": {"type": ["string", "null"]},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "total_messages": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": 200},
            "offset": {"type": "integer", "minimum": 0},
            "has_more": {"type": "boolean"},
            "messages": {"type": "array", "items": ref("Message")},
        }
    ),
    "RenameRequest": obj({"title": text(1, 255)}, description="Unknown fields are ignored."),
    "SuccessResult": obj(
        {"success": {"type": "boolean", "const": True}, "message": {"type": "string", "minLength": 1}}
    ),
    "DeleteResult": obj(
        {
            "success": {"type": "boolean", "const": True},
            "message": {"type": "string", "minLength": 1},
            "deleted_count": {"type": ["integer", "null"], "minimum": 0},
        }
    ),
    "ModelInfo": obj(
        {"id": {"type": "string"}, "name": {"type": "string"}, "context_window": {"type": "integer"}},
        required=["id", "name"],
    ),
    "ModelCatalogue": {
        "type": "object",
        "description": "Provider name → its models, in catalogue order (CONTRACT §6.6).",
        "additionalProperties": {"type": "array", "items": ref("ModelInfo")},
    },
    # --- health (CONTRACT §8) ---
    "ServiceHealth": obj(
        {
            "status": {"type": "string", "enum": ["healthy", "unhealthy", "degraded"]},
            "latency_ms": {"type": ["number", "null"]},
            "details": {"type": ["object", "null"]},
        }
    ),
    "Health": obj(
        {
            "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
            "timestamp": TIMESTAMP,
            "version": {"type": "string"},
            "services": {
                "type": "object",
                "required": ["database"],
                "additionalProperties": ref("ServiceHealth"),
            },
        }
    ),
    "Live": obj({"status": {"type": "string", "const": "ok"}, "timestamp": TIMESTAMP}),
    "Ready": obj({"status": {"type": "string", "const": "ready"}, "timestamp": TIMESTAMP}),
    "NotReady": obj(
        {
            "status": {"type": "string", "const": "not_ready"},
            "reason": {"type": "string", "enum": ["database_timeout", "database_unavailable"]},
            "message": {"type": "string"},
            "timestamp": TIMESTAMP,
        }
    ),
}


def _sse_event(name: str, data: Schema, description: str) -> Schema:
    return obj(
        {
            "event": {"type": "string", "const": name},
            "id": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
        },
        required=["event", "id", "data"],
        description=description,
    )


SSE_EVENT: Schema = {
    "description": (
        "One event of the stream (CONTRACT §7.9-7.10), as `id: <n>`, `event: <name>` and one `data: <compact "
        "JSON>` line, then a blank line. Order: `start`, any `thought`/`chunk`, `sentiment`, `done`; or an "
        "`error`, always last. Comment lines (`: keep-alive`) may come in between."
    ),
    "oneOf": [
        _sse_event(
            "start",
            obj({"conversation_id": UUID, "message_id": {"type": "integer", "minimum": 1}}),
            "First: the conversation (new or given) and the stored user message.",
        ),
        _sse_event("thought", obj({"content": {"type": "string", "minLength": 1}}), "The model's reasoning text."),
        _sse_event("chunk", obj({"content": {"type": "string", "minLength": 1}}), "The next piece of the reply."),
        _sse_event(
            "sentiment",
            obj({"message": nullable(SENTIMENT_EVENT), "cumulative": nullable(SENTIMENT_EVENT)}),
            "After the last chunk, once the turn is stored.",
        ),
        _sse_event("done", obj({"finish_reason": {"type": "string", "const": "stop"}}), "Last event of a success."),
        _sse_event(
            "error",
            obj(
                {"message": {"type": "string", "minLength": 1}, "request_id": {"type": "string"}},
                required=["message"],
            ),
            "A failure after the 200: always last. An unexpected one carries the request id its log lines carry.",
        ),
    ],
}


# --- Responses -----------------------------------------------------------------------------------

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.HEADER,
    required=True,
    description="Seconds to wait.",
)
WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate", {"type": "string", "const": "Bearer"}, OpenApiParameter.HEADER, required=True
)
SET_COOKIE = OpenApiParameter(
    "Set-Cookie",
    {"type": "string"},
    OpenApiParameter.HEADER,
    required=True,
    description="The auth cookie (CONTRACT §3.2): HttpOnly, Secure by default, SameSite=Lax by default, Path=/.",
)

ERRORS: dict[int, OpenApiResponse] = {
    400: OpenApiResponse(ref("Error"), "Refused by a rule of the operation."),
    401: OpenApiResponse(ref("Error"), "Missing, invalid, expired or revoked credentials. Never a 403."),
    403: OpenApiResponse(
        ref("Error"), "`Origin not allowed`: an unsafe request from an origin that isn't allowed (CONTRACT §3.6)."
    ),
    404: OpenApiResponse(ref("Error"), "`Conversation not found`: unknown, or someone else's."),
    409: OpenApiResponse(ref("Error"), "A concurrent registration won the race for the same email or username."),
    413: OpenApiResponse(ref("Error"), "The body is larger than the server accepts."),
    415: OpenApiResponse(ref("Error"), "A Content-Type other than application/json."),
    422: OpenApiResponse(ref("ValidationError"), "Validation failed, or the body is not JSON."),
    429: OpenApiResponse(ref("RateLimitError"), "Rate limited."),
    500: OpenApiResponse(ref("InternalError"), "Unexpected failure."),
    503: OpenApiResponse(ref("Error"), "The database is unavailable; retry after Retry-After seconds."),
}
AUTHENTICATED = (401, 500, 503)
WITH_BODY = (403, 413, 415, 422)


def responses(success: dict[Any, Any], *codes: int) -> dict[Any, Any]:
    return {**success, **{code: ERRORS[code] for code in sorted(set(codes))}}


def page_parameter(name: str, *, minimum: int, default: int, maximum: int | None = None) -> OpenApiParameter:
    schema: Schema = {"type": "integer", "minimum": minimum, "default": default}
    if maximum is not None:
        schema["maximum"] = maximum
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY)


CONVERSATION_ID = OpenApiParameter(
    "conversation_id",
    UUID,
    OpenApiParameter.PATH,
    required=True,
    description="A conversation's UUID (malformed: 422; unknown or someone else's: 404).",
)


def token_response(status: int) -> dict[int, OpenApiResponse]:
    return {status: OpenApiResponse(ref("TokenResponse"), "The token, also set as the auth cookie.")}


def document_views() -> None:
    """Attach the contract's description to every API view (in place; behaviour is unchanged)."""
    from accounts import apis as auth
    from conversations import apis as chat
    from llm.apis import ModelListApi
    from sentiment.apis import MethodsApi

    auth_tag = ["auth"]
    chat_tag = ["chat"]
    extend_schema_view(
        post=extend_schema(
            operation_id="auth_register",
            tags=auth_tag,
            summary="Create an account and sign in",
            request={"application/json": ref("RegisterRequest")},
            responses=responses(token_response(201), 400, 409, 429, 500, 503, *WITH_BODY),
            parameters=[_response_header(SET_COOKIE, 201)],
            auth=[],
        )
    )(auth.RegisterApi)
    extend_schema_view(
        post=extend_schema(
            operation_id="auth_login",
            tags=auth_tag,
            summary="Sign in with email and password",
            description="Wrong password and unknown email are the same 401. Register and login share one "
            "per-IP limit; each account also has a limit on failed logins.",
            request={"application/json": ref("LoginRequest")},
            responses=responses(token_response(200), 401, 429, 500, 503, *WITH_BODY),
            parameters=[_response_header(SET_COOKIE, 200)],
            auth=[],
        )
    )(auth.LoginApi)
    extend_schema_view(
        get=extend_schema(
            operation_id="auth_me",
            tags=auth_tag,
            summary="The signed-in user",
            responses=responses({200: ref("User")}, *AUTHENTICATED),
        )
    )(auth.MeApi)
    extend_schema_view(
        post=extend_schema(
            operation_id="auth_refresh",
            tags=auth_tag,
            summary="Exchange the current token for a new one",
            description="No body. The presented token is spent: a second refresh with it is a 401.",
            request=None,
            responses=responses(token_response(200), 403, *AUTHENTICATED),
            parameters=[_response_header(SET_COOKIE, 200)],
        )
    )(auth.RefreshApi)
    extend_schema_view(
        post=extend_schema(
            operation_id="auth_logout",
            tags=auth_tag,
            summary="Sign out",
            description="No auth and no body needed; a valid presented token is revoked, and the cookie cleared.",
            request=None,
            responses=responses({200: ref("LogoutResponse")}, 403, 500, 503),
            parameters=[_response_header(SET_COOKIE, 200)],
            auth=[],
        )
    )(auth.LogoutApi)
    extend_schema_view(
        post=extend_schema(
            operation_id="chat_stream",
            tags=chat_tag,
            summary="Send a message and stream the reply (Server-Sent Events)",
            description=(
                "Checks before the stream, as plain JSON errors: 401, 422, 429, 400 (no text), 404 "
                "(conversation). Then a 200 `text/event-stream`; failures after it are an `error` event."
            ),
            request={"application/json": ref("ChatStreamRequest")},
            responses={
                **responses(
                    {
                        (200, "text/event-stream"): OpenApiResponse(
                            SSE_EVENT, "The event stream; the schema is one event."
                        )
                    },
                    400,
                    404,
                    *WITH_BODY,
                    *AUTHENTICATED,
                ),
                429: OpenApiResponse(ref("ChatLimitError"), "Rate limited, too many streams, or token budget spent."),
            },
        )
    )(chat.ChatStreamApi)
    extend_schema_view(
        get=extend_schema(
            operation_id="chat_history",
            tags=chat_tag,
            summary="The caller's conversations, most recently active first",
            parameters=[
                page_parameter("offset", minimum=0, maximum=chat.MAX_OFFSET, default=0),
                page_parameter("limit", minimum=1, maximum=100, default=20),
            ],
            responses=responses({200: {"type": "array", "items": ref("ConversationSummary")}}, 422, *AUTHENTICATED),
        )
    )(chat.HistoryApi)
    extend_schema_view(
        get=extend_schema(
            operation_id="chat_conversation",
            tags=chat_tag,
            summary="A conversation and a chronological page of its messages",
            parameters=[
                CONVERSATION_ID,
                page_parameter("limit", minimum=1, maximum=200, default=50),
                page_parameter("offset", minimum=0, maximum=chat.MAX_OFFSET, default=0),
            ],
            responses=responses({200: ref("ConversationDetail")}, 404, 422, *AUTHENTICATED),
        ),
        delete=extend_schema(
            operation_id="chat_conversation_delete",
            tags=chat_tag,
            summary="Delete a conversation and its messages",
            parameters=[CONVERSATION_ID],
            responses=responses({200: ref("DeleteResult")}, 403, 404, 422, *AUTHENTICATED),
        ),
    )(chat.ConversationApi)
    extend_schema_view(
        delete=extend_schema(
            operation_id="chat_conversations_delete",
            tags=chat_tag,
            summary="Delete all of the caller's conversations",
            responses=responses({200: ref("DeleteResult")}, 403, *AUTHENTICATED),
        )
    )(chat.ConversationsApi)
    extend_schema_view(
        patch=extend_schema(
            operation_id="chat_conversation_rename",
            tags=chat_tag,
            summary="Rename a conversation",
            parameters=[CONVERSATION_ID],
            request={"application/json": ref("RenameRequest")},
            responses=responses({200: ref("SuccessResult")}, 404, *WITH_BODY, *AUTHENTICATED),
        )
    )(chat.RenameApi)
    extend_schema_view(
        get=extend_schema(
            operation_id="chat_models",
            tags=chat_tag,
            summary="The model catalogue (public)",
            responses={200: ref("ModelCatalogue"), 500: ERRORS[500]},
            auth=[],
        )
    )(ModelListApi)
    extend_schema_view(
        get=extend_schema(
            operation_id="chat_methods",
            tags=chat_tag,
            summary="The sentiment method ids (public)",
            responses={200: {"type": "array", "items": {"type": "string"}, "minItems": 1}, 500: ERRORS[500]},
            auth=[],
        )
    )(MethodsApi)


def _response_header(parameter: OpenApiParameter, status: int) -> OpenApiParameter:
    return OpenApiParameter(
        parameter.name,
        parameter.type,
        OpenApiParameter.HEADER,
        required=parameter.required,
        description=parameter.description,
        response=[status],
    )


# --- Security scheme -----------------------------------------------------------------------------


class CookieOrBearerScheme(OpenApiAuthenticationExtension):
    """accounts' authentication: the auth cookie, used exclusively when present, else a Bearer token."""

    target_class = "accounts.authentication.JWTCookieOrBearerAuthentication"
    name = ["bearerAuth", "cookieAuth"]

    def get_security_definition(self, auto_schema: Any) -> list[Schema]:
        return [
            {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            {"type": "apiKey", "in": "cookie", "name": settings.COOKIE_NAME},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        return [{"bearerAuth": []}, {"cookieAuth": []}]


# --- Post-processing -----------------------------------------------------------------------------

HEALTH_PATHS: dict[str, Schema] = {
    "/health": {
        "get": {
            "operationId": "health",
            "tags": ["health"],
            "summary": "Health of the service and its dependencies; always 200 (the verdict is in the body)",
            "responses": {"200": {"description": "", "content": {"application/json": {"schema": ref("Health")}}}},
        }
    },
    "/health/live": {
        "get": {
            "operationId": "health_live",
            "tags": ["health"],
            "summary": "Liveness: no dependency checks",
            "responses": {"200": {"description": "", "content": {"application/json": {"schema": ref("Live")}}}},
        }
    },
    "/health/ready": {
        "get": {
            "operationId": "health_ready",
            "tags": ["health"],
            "summary": "Readiness: 503 while the database is unreachable or slow",
            "responses": {
                "200": {"description": "", "content": {"application/json": {"schema": ref("Ready")}}},
                "503": {"description": "", "content": {"application/json": {"schema": ref("NotReady")}}},
            },
        }
    },
}


def postprocess(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """Add the shared components and the health paths; fill in what depends on settings."""
    from llm import provider_names
    from sentiment import METHODS

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(COMPONENTS)
    chat = schemas["ChatStreamRequest"] = copy.deepcopy(COMPONENTS["ChatStreamRequest"])
    chat["properties"]["provider"]["enum"] = provider_names()
    chat["properties"]["sentiment_method"]["enum"] = list(METHODS)
    result["paths"].update(HEALTH_PATHS)
    for path, method in (
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/chat/conversation/{conversation_id}/rename", "patch"),
    ):
        result["paths"][path][method]["requestBody"]["required"] = True
    # Every 401 carries WWW-Authenticate and every 429 Retry-After, wherever they're documented.
    for operations in result["paths"].values():
        for operation in operations.values():
            for status, header in (("401", WWW_AUTHENTICATE), ("429", RETRY_AFTER)):
                response = operation.get("responses", {}).get(status)
                if response is not None:
                    response.setdefault("headers", {})[header.name] = {
                        "schema": header.type,
                        "required": True,
                        **({"description": header.description} if header.description else {}),
                    }
    _add_links(result)
    return result


def _add_links(result: Schema) -> None:
    """Stateful links: a conversation listed by history can be opened, renamed and deleted."""
    listed = "$response.body#/0/id"
    history = result["paths"]["/api/v1/chat/history"]["get"]["responses"]["200"]
    history["links"] = {
        name: {"operationId": operation_id, "parameters": {"conversation_id": listed}}
        for name, operation_id in (
            ("OpenConversation", "chat_conversation"),
            ("RenameConversation", "chat_conversation_rename"),
            ("DeleteConversation", "chat_conversation_delete"),
        )
    }


# --- Views ---------------------------------------------------------------------------------------


class JSONErrorsMixin:
    """The schema and docs views render YAML or HTML; their errors are JSON like everywhere else."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


class SchemaView(JSONErrorsMixin, SpectacularAPIView):
    """JSON by default (`Accept: application/json` or anything), YAML with `?format=yaml` or
    `Accept: application/yaml` (Lia's API otherwise forces JSON: lia.negotiation)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    content_negotiation_class = DefaultContentNegotiation
    renderer_classes = [OpenApiJsonRenderer2, OpenApiJsonRenderer, OpenApiYamlRenderer2, OpenApiYamlRenderer]


class SwaggerView(JSONErrorsMixin, SpectacularSwaggerView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    url_name = "api-schema"


class RedocView(JSONErrorsMixin, SpectacularRedocView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    url_name = "api-schema"

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        # The Redoc bundle shows Redocly's logo from cdn.redoc.ly: no image or font of the docs
        # comes from another origin (found by a browser audit; the template's fonts are gone too).
        response["Content-Security-Policy"] = "img-src 'self' data:; font-src 'self' data:"
        return response


document_views()
