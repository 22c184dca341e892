from __future__ import annotations

from django.urls import path

from gateway.compat import views

urlpatterns = [
    path("v1/messages", views.MessagesApi.as_view(), name="messages"),
    path("v1/messages/count_tokens", views.CountTokensApi.as_view(), name="count-tokens"),
    path("v1/messages/batches", views.MessageBatchListApi.as_view(), name="message-batches"),
    path("v1/messages/batches/<str:batch_id>", views.MessageBatchDetailApi.as_view(), name="message-batch"),
    path(
        "v1/messages/batches/<str:batch_id>/cancel", views.MessageBatchCancelApi.as_view(), name="message-batch-cancel"
    ),
    path(
        "v1/messages/batches/<str:batch_id>/results",
        views.MessageBatchResultsApi.as_view(),
        name="message-batch-results",
    ),
    path("v1/models", views.ModelListApi.as_view(), name="models"),
    path("v1/models/<str:model_id>", views.ModelDetailApi.as_view(), name="model-detail"),
]
