from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt

from lia import openapi
from lia.errors import handler404 as not_found

urlpatterns = [
    path("api/v1/auth/", include("accounts.urls")),
    path("api/v1/chat/", include("conversations.urls")),
    path("api/v1/chat/", include("llm.urls")),
    path("api/v1/chat/", include("sentiment.urls")),
    path("api/v1/schema", openapi.SchemaView.as_view(), name="api-schema"),
    path("api/v1/docs", openapi.SwaggerView.as_view(), name="api-docs"),
    path("api/v1/docs/redoc", openapi.RedocView.as_view(), name="api-docs-redoc"),
    path("admin/", admin.site.urls),
    path("", include("health.urls")),
    # Unknown paths answer the contract's JSON 404 for every method, in DEBUG too (where
    # Django would otherwise render its HTML technical page).
    re_path(r"^", csrf_exempt(not_found)),
]

handler400 = "lia.errors.handler400"
handler403 = "lia.errors.handler403"
handler404 = "lia.errors.handler404"
handler500 = "lia.errors.handler500"
