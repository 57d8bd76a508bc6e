from django.urls import path

from conversations import apis

urlpatterns = [
    path("stream", apis.ChatStreamApi.as_view(), name="chat-stream"),
    path("history", apis.HistoryApi.as_view(), name="chat-history"),
    path("conversations", apis.ConversationsApi.as_view(), name="chat-conversations"),
    path("conversation/<str:conversation_id>", apis.ConversationApi.as_view(), name="chat-conversation"),
    path("conversation/<str:conversation_id>/rename", apis.RenameApi.as_view(), name="chat-conversation-rename"),
]
