from django.urls import path

from sentiment import apis

urlpatterns = [
    path("methods", apis.MethodsApi.as_view(), name="chat-methods"),
]
