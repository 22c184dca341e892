"""The scopes of API clients: what their tokens may call. Each API view names the one it requires
(`required_scope`); keys.authentication.ApiClientAccess checks it against the client's."""

from __future__ import annotations

from django.db import models


class Scope(models.TextChoices):
    """What an API client's tokens may call; each API view declares the one it needs (`required_scope`)."""

    RUN = "run", "run: list, read and run prompts, read runs"
    JOBS = "jobs", "jobs: submit and read jobs"
    BATCHES = "batches", "batches: create, read, cancel batches and read their results"
    USAGE_READ = "usage:read", "usage:read: the client's usage and cost estimates"
    ANTHROPIC = "anthropic", "anthropic: the Anthropic-compatible endpoint (/anthropic/), its batches too"
