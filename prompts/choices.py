from __future__ import annotations

from django.db import models


class DataCategory(models.TextChoices):
    """What kind of data a prompt handles: the inventory of prompts that touch sensitive data."""

    NONE = "none", "None"
    PERSONAL = "personal", "Personal data"
    HEALTH = "health", "Health data"
    FINANCIAL = "financial", "Financial data"
    CREDENTIALS = "credentials", "Credentials"
    CONFIDENTIAL = "confidential", "Confidential business"


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    RETIRED = "retired", "Retired"


class CacheTTL(models.TextChoices):
    """Prompt-cache TTL for the system prompt."""

    OFF = "off", "Off"
    FIVE_MINUTES = "5m", "5 minutes"
    ONE_HOUR = "1h", "1 hour"


class VariableType(models.TextChoices):
    STRING = "string", "String"
    INTEGER = "integer", "Integer"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Boolean"
    ENUM = "enum", "Enum"
