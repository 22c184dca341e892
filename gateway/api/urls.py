from __future__ import annotations

from django.urls import path

from gateway.api import views

urlpatterns = [
    path("prompts", views.PromptListApi.as_view(), name="prompt-list"),
    path("prompts/<slug:slug>", views.PromptDetailApi.as_view(), name="prompt-detail"),
    path("prompts/<slug:slug>/run", views.PromptRunApi.as_view(), name="prompt-run"),
    path("prompts/<slug:slug>/jobs", views.PromptJobApi.as_view(), name="prompt-jobs"),
    path("prompts/<slug:slug>/batches", views.PromptBatchApi.as_view(), name="prompt-batches"),
    path("runs/<str:run_id>", views.RunDetailApi.as_view(), name="run-detail"),
    path("jobs/<str:job_id>", views.JobDetailApi.as_view(), name="job-detail"),
    path("batches/<str:batch_id>", views.BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<str:batch_id>/cancel", views.BatchCancelApi.as_view(), name="batch-cancel"),
    path("batches/<str:batch_id>/results", views.BatchResultsApi.as_view(), name="batch-results"),
]
