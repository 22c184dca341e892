from __future__ import annotations

from django.urls import path

from prompts.api import views

urlpatterns = [
    path("prompts", views.PromptListApi.as_view(), name="prompt-list"),
    path("prompts/<slug:slug>", views.PromptDetailApi.as_view(), name="prompt-detail"),
    path("prompts/<slug:slug>/run", views.PromptRunApi.as_view(), name="prompt-run"),
    path("runs/<str:run_id>", views.RunDetailApi.as_view(), name="run-detail"),
]
