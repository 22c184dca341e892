"""The playground's page, under /admin/playground/ (config/urls.py includes it before the admin's catch-all),
behind the admin's sign-in and its two-factor gate."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from evaluations import views

urlpatterns = [
    path("<int:version_id>/", admin.site.admin_view(views.playground_view), name="playground"),
]
