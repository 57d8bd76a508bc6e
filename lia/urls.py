from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt

from conversations.views import chat_page
from health.views import get_only
from lia import openapi
from lia.errors import handler404 as not_found
from lia.views import admin_login, root

urlpatterns = [
    path("api/v1/auth/", include("accounts.urls")),
    path("api/v1/chat/", include("conversations.urls")),
    path("api/v1/chat/", include("llm.urls")),
    path("api/v1/chat/", include("sentiment.urls")),
    path("admin/login/", admin_login, name="admin-login"),
    path("api/v1/schema", openapi.SchemaView.as_view(), name="api-schema"),
    path("api/v1/docs", openapi.SwaggerView.as_view(), name="api-docs"),
    path("api/v1/docs/redoc", openapi.RedocView.as_view(), name="api-docs-redoc"),
    path("admin/", admin.site.urls),
    path("", include("health.urls")),
    path("chat", csrf_exempt(get_only(chat_page)), name="chat-page"),
    path("", csrf_exempt(root), name="root"),
    # Unknown paths answer the contract's JSON 404 for every method, in DEBUG too (where
    # Django would otherwise render its HTML technical page).
    re_path(r"^", csrf_exempt(not_found)),
]

handler400 = "lia.errors.handler400"
handler403 = "lia.errors.handler403"
handler404 = "lia.errors.handler404"
handler500 = "lia.errors.handler500"
