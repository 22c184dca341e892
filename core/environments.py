"""The three fixed environments (docs/contract.md §2). Keys, API clients and releases each belong to one."""

from __future__ import annotations

from django.db import models


class Environment(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
