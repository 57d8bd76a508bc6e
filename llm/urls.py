from django.urls import path

from llm.apis import ModelListApi

urlpatterns = [
    path("models", ModelListApi.as_view(), name="chat-models"),
]
