from __future__ import annotations

from django.urls import path

from usage.api import views

urlpatterns = [
    path("cost/estimate", views.CostEstimateApi.as_view(), name="cost-estimate"),
    path("usage", views.UsageApi.as_view(), name="usage"),
]
