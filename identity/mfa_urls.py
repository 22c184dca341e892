"""The pages of two-factor authentication, under /admin/mfa/ (behind the admin's own sign-in)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from identity import mfa_views as views

urlpatterns = [
    path("", admin.site.admin_view(views.overview_view), name="mfa-overview"),
    path("enrol/", admin.site.admin_view(views.enrol_view), name="mfa-enrol"),
    path("verify/", admin.site.admin_view(views.verify_view), name="mfa-verify"),
]
