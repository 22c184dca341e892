from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.environments import Environment
from core.governance import history_user
from core.scopes import Scope
from keys.upstreams import upstream_url_allowed

DEFAULT_BASE_URL = "https://api.anthropic.com"


def all_scopes() -> list[str]:
    return list(Scope.values)


def networks_normalized(networks: list[str]) -> list[str]:
    """The CIDR networks, each written the way `ipaddress` writes it (host bits are refused), sorted and
    without repeats; raises ValidationError naming each one that is not a network."""
    parsed: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    errors = []
    for network in networks:
        try:
            parsed.append(ipaddress.ip_network(str(network).strip()))
        except ValueError as exc:
            errors.append(f"{network!r}: {exc}")
    if errors:
        raise ValidationError("Not a network: " + "; ".join(errors))
    return [str(n) for n in sorted(set(parsed), key=lambda n: (n.version, n.network_address, n.prefixlen))]


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RETIRING = "retiring", "Retiring (grace period)"
    REVOKED = "revoked", "Revoked"


class ProviderKey(models.Model):
    """An Anthropic API key for one environment, encrypted at rest and never shown after it is saved.

    Only its last four characters and a fingerprint identify it anywhere in the product. One key is
    active per environment; during a rotation the previous one may stay `retiring` for a grace period.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.CharField(max_length=12, choices=Environment.choices)
    label = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", help_text="Gets rotation reminders."
    )
    secret_ciphertext = models.TextField(editable=False)
    secret_kek_id = models.CharField(max_length=32, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    fingerprint = models.CharField(max_length=16, editable=False, help_text="First 16 hex digits of SHA-256.")
    base_url = models.URLField(default=DEFAULT_BASE_URL)
    status = models.CharField(max_length=10, choices=KeyStatus.choices, default=KeyStatus.ACTIVE, editable=False)
    retiring_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    rotation_period_days = models.PositiveIntegerField(default=90, validators=[MinValueValidator(1)])
    last_rotated_at = models.DateTimeField(default=timezone.now, editable=False)
    monthly_cap_usd = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal(0))])
    daily_cap_usd = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal(0))]
    )
    alert_threshold_percent = models.PositiveSmallIntegerField(
        default=80, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    # The first key of the line this key continues by rotation: the caps belong to the line, so a rotation
    # never starts a month's or a day's spend afresh. Empty on a line's first key.
    rotated_from_first = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )

    history = HistoricalRecords(get_user=history_user, excluded_fields=["secret_ciphertext", "secret_kek_id"])

    class Meta:
        ordering = ["environment", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment"], condition=Q(status="active"), name="provider_key_one_active_per_environment"
            ),
            models.UniqueConstraint(
                fields=["environment"], condition=Q(status="retiring"), name="provider_key_one_retiring_per_environment"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.environment}, …{self.last_four})"

    def clean(self) -> None:
        if not upstream_url_allowed(self.base_url):
            raise ValidationError(
                {"base_url": "Not an allowed upstream: keys may only go to the origins in TOLLGATE_UPSTREAM_BASE_URLS."}
            )

    @property
    def cap_id(self) -> int:
        """Whose spend counters this key's calls count against: its line's (see `rotated_from_first`)."""
        return self.rotated_from_first_id or self.pk

    @property
    def next_due(self) -> datetime:
        return self.last_rotated_at + timedelta(days=self.rotation_period_days)


class KeyReminder(models.Model):
    """One rotation reminder sent for one key on one day: the unique row is what prevents a second."""

    key = models.ForeignKey(ProviderKey, on_delete=models.CASCADE, related_name="reminders")
    day = models.DateField()
    days_left = models.IntegerField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="key_reminder_once_a_day")]

    def __str__(self) -> str:
        return f"reminder for {self.key} on {self.day}"


class ApiClient(models.Model):
    """A caller of the REST API (a team's service): its environment, what it may run and spend."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    team = models.CharField(max_length=100, blank=True)
    environment = models.CharField(max_length=12, choices=Environment.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    all_prompts = models.BooleanField(default=False, help_text="May run every prompt released to its environment.")
    allowed_prompts = models.JSONField(default=list, blank=True, help_text="Slugs of the prompts it may run.")
    rate_limit_per_minute = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    monthly_cap_usd = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal(0))]
    )
    # The Anthropic-compatible endpoint (docs/anthropic.md): prompt-bound calls by default; free-form calls
    # (the caller's own system prompt) only when a key custodian allows them, within these limits.
    freeform = models.BooleanField(
        "free-form calls",
        default=False,
        help_text="May send its own system prompt and messages to the Anthropic-compatible endpoint.",
    )
    freeform_models = models.JSONField(
        "free-form models", default=list, blank=True, help_text="Models a free-form call may name."
    )
    freeform_max_tokens = models.PositiveIntegerField(
        "free-form max_tokens ceiling",
        default=4096,
        validators=[MinValueValidator(1), MaxValueValidator(128_000)],
        help_text="The largest max_tokens a free-form call may ask for.",
    )
    freeform_media = models.BooleanField(
        "free-form images and documents",
        default=False,
        help_text="May send image and document blocks: personal data in them cannot be redacted.",
    )
    scopes = models.JSONField(default=all_scopes, blank=True, help_text="What its tokens may call (Scope).")
    networks = models.JSONField(
        default=list,
        blank=True,
        help_text="CIDR networks its requests must come from (e.g. 10.20.0.0/16, 2001:db8::/48); none: any.",
    )
    webhook_secret_ciphertext = models.TextField(editable=False)
    webhook_secret_kek_id = models.CharField(max_length=32, editable=False)
    # Signed requests (docs/api.md): when required, every request must carry an HMAC of itself under the
    # client's signing secret, which Tollgate generates, shows once and keeps encrypted (keys.crypto).
    signature_required = models.BooleanField(
        "signed requests required",
        default=False,
        help_text="Every request must be signed with the client's signing secret (generate one first).",
    )
    signing_secret_ciphertext = models.TextField(blank=True, default="", editable=False)
    signing_secret_kek_id = models.CharField(max_length=32, blank=True, default="", editable=False)
    signing_secret_created_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    history = HistoricalRecords(
        get_user=history_user,
        excluded_fields=[
            "webhook_secret_ciphertext",
            "webhook_secret_kek_id",
            "signing_secret_ciphertext",
            "signing_secret_kek_id",
        ],
    )

    class Meta:
        ordering = ["environment", "name"]
        verbose_name = "API client"

    def __str__(self) -> str:
        return f"{self.name} ({self.environment})"

    # DRF treats the authenticated principal as request.user.
    @property
    def is_authenticated(self) -> bool:
        return True

    def clean(self) -> None:
        unknown = sorted(set(self.scopes) - set(Scope.values)) if isinstance(self.scopes, list) else ["(not a list)"]
        if unknown:
            raise ValidationError({"scopes": f"Unknown scopes: {', '.join(map(str, unknown))}."})
        self.scopes = [scope for scope in Scope.values if scope in self.scopes]
        self.networks = self.networks_cleaned()
        if self.signature_required and not self.has_signing_secret:
            raise ValidationError(
                {"signature_required": "Generate the client's signing secret first (Rotate signing secret)."}
            )

    def networks_cleaned(self) -> list[str]:
        """The client's networks as they are stored (networks_normalized); a ValidationError names the field."""
        if not isinstance(self.networks, list):
            raise ValidationError({"networks": "A list of CIDR networks."})
        try:
            return networks_normalized(self.networks)
        except ValidationError as exc:
            raise ValidationError({"networks": exc.messages}) from None

    @property
    def has_signing_secret(self) -> bool:
        return bool(self.signing_secret_ciphertext)

    def may_run(self, slug: str) -> bool:
        return self.all_prompts or slug in self.allowed_prompts


class ApiToken(models.Model):
    """One bearer token of an API client. Only its digest is kept; several may be live to rotate."""

    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="tokens")
    label = models.CharField(max_length=100)
    lookup_id = models.CharField(max_length=12, unique=True, editable=False)
    token_digest = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    # last_used_at changes on use, not by anyone's decision: it stays out of the change history.
    history = HistoricalRecords(get_user=history_user, excluded_fields=["token_digest", "last_used_at"])

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.label} ({self.client.name}, tg_…{self.lookup_id[:4]})"

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())
