"""Provider keys and API clients: every change goes through here, is audited, and never logs a secret."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.http.request import RawPostDataException
from django.utils import timezone

from audit.services import audit_event_record
from core.errors import (
    AuthenticationFailed,
    DomainError,
    KeyOperationRefused,
    NetworkNotAllowed,
    ScopeRequired,
    SignatureInvalid,
    SignatureRefused,
    SignatureReplayed,
    SignatureRequired,
    SignatureStale,
)
from core.governance import audit_value, governed_update, require_permission, require_reason, save_with_history
from core.hotcache import HotCache, generation_bump, observe
from core.roles import Role
from keys.crypto import DecryptionFailed, Sealed, associated_data, primary_key_id, seal, unseal
from keys.models import DEFAULT_BASE_URL, ApiClient, ApiToken, KeyReminder, KeyStatus, ProviderKey, all_scopes
from keys.ratelimit import WINDOW_SECONDS, rate_limit_counter
from keys.signing import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, canonical_string, signature
from keys.tokens import token_digest, token_generate, token_parse

logger = logging.getLogger(__name__)

REMINDER_DAYS = (14, 7, 1)
KEY_SETTINGS = (
    "label",
    "owner",
    "base_url",
    "rotation_period_days",
    "monthly_cap_usd",
    "daily_cap_usd",
    "alert_threshold_percent",
)
CLIENT_SETTINGS = (
    "name",
    "team",
    "owner",
    "all_prompts",
    "allowed_prompts",
    "rate_limit_per_minute",
    "monthly_cap_usd",
    "expires_at",
    "freeform",
    "freeform_models",
    "freeform_max_tokens",
    "freeform_media",
    "scopes",
    "networks",
    "signature_required",
)
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _refuse_fields(names: list[str]) -> KeyOperationRefused:
    return KeyOperationRefused(f"These cannot be changed here: {', '.join(names)}.")


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


# --- provider keys --------------------------------------------------------------------------------------


def _key_aad(key: ProviderKey) -> bytes:
    return associated_data(kind="provider_key", row=str(key.uid), environment=key.environment)


def _set_secret(key: ProviderKey, secret: str) -> None:
    secret = secret.strip()
    if len(secret) < 20:
        raise KeyOperationRefused("That does not look like an API key: it is too short.")
    sealed = seal(secret, aad=_key_aad(key))
    key.secret_ciphertext, key.secret_kek_id = sealed.ciphertext, sealed.key_id
    key.last_four = secret[-4:]
    key.fingerprint = fingerprint(secret)


def _audit_key(action: str, key: ProviderKey, actor: User | None, reason: str = "", **changes: Any) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        actor_repr=None if actor else "system",
        target=key,
        changes={"environment": key.environment, "last_four": key.last_four, "fingerprint": key.fingerprint, **changes},
        reason=reason,
    )


@transaction.atomic
def provider_key_create(
    *,
    actor: User,
    environment: str,
    label: str,
    secret: str,
    owner: User,
    monthly_cap_usd: Decimal,
    base_url: str = "",
    daily_cap_usd: Decimal | None = None,
    rotation_period_days: int = 90,
    alert_threshold_percent: int = 80,
    reason: str = "Key added",
) -> ProviderKey:
    """Add the environment's active key. An active key already there is rotated, not duplicated."""
    require_permission(actor, "keys.add_providerkey", "add provider keys")
    if ProviderKey.objects.filter(environment=environment, status=KeyStatus.ACTIVE).exists():
        raise KeyOperationRefused(f"{environment} already has an active key: rotate it instead.")
    key = ProviderKey(
        environment=environment,
        label=label,
        owner=owner,
        base_url=base_url or DEFAULT_BASE_URL,
        created_by=actor,
        monthly_cap_usd=monthly_cap_usd,
        daily_cap_usd=daily_cap_usd,
        rotation_period_days=rotation_period_days,
        alert_threshold_percent=alert_threshold_percent,
    )
    _set_secret(key, secret)
    key.full_clean()
    save_with_history(key, actor=actor, reason=reason)
    _audit_key(
        "provider_key.create",
        key,
        actor,
        reason,
        monthly_cap_usd=str(monthly_cap_usd),
        daily_cap_usd=str(daily_cap_usd) if daily_cap_usd is not None else None,
    )
    return key


@transaction.atomic
def provider_key_update(*, actor: User, key: ProviderKey, reason: str, **changes: Any) -> ProviderKey:
    """Change a key's settings (caps, owner, label, period). The secret changes only by rotation."""
    require_permission(actor, "keys.change_providerkey", "change provider keys")
    reason = require_reason(reason, "change a key")
    key, changed = governed_update(
        key, actor=actor, reason=reason, changes=changes, fields=KEY_SETTINGS, refuse=_refuse_fields
    )
    cap_change = {"monthly_cap_usd", "daily_cap_usd", "alert_threshold_percent"} & set(changed)
    _audit_key("provider_key.cap_change" if cap_change else "provider_key.update", key, actor, reason, **changed)
    return key


@transaction.atomic
def provider_key_rotate(
    *, actor: User, key: ProviderKey, new_secret: str, reason: str, grace_hours: int = 0
) -> ProviderKey:
    """Replace the active key: the new secret becomes active with the same settings; the old one is
    revoked, or kept `retiring` for `grace_hours` so in-flight work can finish."""
    require_permission(actor, "keys.change_providerkey", "rotate provider keys")
    reason = require_reason(reason, "rotate a key")
    old = ProviderKey.objects.select_for_update().get(pk=key.pk)
    if old.status != KeyStatus.ACTIVE:
        raise KeyOperationRefused(f"Only the active key can be rotated; {old} is {old.get_status_display().lower()}.")
    now = timezone.now()
    # Only one key may be retiring: an earlier one still in its grace period ends now.
    for earlier in ProviderKey.objects.select_for_update().filter(
        environment=old.environment, status=KeyStatus.RETIRING
    ):
        _revoke(earlier, actor=actor, reason=f"Superseded by a rotation: {reason}")
    if grace_hours > 0:
        old.status, old.retiring_until = KeyStatus.RETIRING, now + timedelta(hours=grace_hours)
        save_with_history(old, actor=actor, reason=reason)
    else:
        _revoke(old, actor=actor, reason=reason, audit=False)
    new = ProviderKey(
        environment=old.environment,
        **{field: getattr(old, field) for field in KEY_SETTINGS},
        created_by=actor,
        last_rotated_at=now,
        rotated_from_first_id=old.cap_id,  # the caps carry over: the month's spend goes on counting
    )
    _set_secret(new, new_secret)
    if new.fingerprint == old.fingerprint:
        raise KeyOperationRefused("The new secret is the same as the old one.")
    new.full_clean()
    save_with_history(new, actor=actor, reason=reason)
    _audit_key(
        "provider_key.rotate",
        new,
        actor,
        reason,
        replaces={"last_four": old.last_four, "fingerprint": old.fingerprint},
        grace_hours=grace_hours,
    )
    return new


def _revoke(key: ProviderKey, *, actor: User | None, reason: str, audit: bool = True) -> None:
    key.status, key.revoked_at, key.revoked_by, key.retiring_until = KeyStatus.REVOKED, timezone.now(), actor, None
    save_with_history(key, actor=actor, reason=reason)
    if audit:
        _audit_key("provider_key.revoke", key, actor, reason)


@transaction.atomic
def provider_key_revoke(*, actor: User, key: ProviderKey, reason: str) -> ProviderKey:
    require_permission(actor, "keys.change_providerkey", "revoke provider keys")
    reason = require_reason(reason, "revoke a key")
    key = ProviderKey.objects.select_for_update().get(pk=key.pk)
    if key.status == KeyStatus.REVOKED:
        raise KeyOperationRefused(f"{key} is already revoked.")
    _revoke(key, actor=actor, reason=reason)
    return key


def provider_key_secret(*, key: ProviderKey) -> str:
    """The plaintext secret, for the upstream call only. A ciphertext that does not authenticate is a
    security event: recorded (durably) and raised, never returned."""
    try:
        return unseal(Sealed(key.secret_ciphertext, key.secret_kek_id), aad=_key_aad(key))
    except DecryptionFailed as exc:
        logger.critical("Provider key %s failed to decrypt: %s", key.pk, exc)
        with transaction.atomic():
            audit_event_record(
                action="security.decryption_failed",
                actor_repr="system",
                target=key,
                changes={"kek_id": key.secret_kek_id, "error": str(exc)},
            )
        raise


@transaction.atomic
def provider_keys_expire_grace() -> int:
    """Revoke retiring keys whose grace period is over. Returns how many."""
    expired = ProviderKey.objects.select_for_update().filter(
        status=KeyStatus.RETIRING, retiring_until__lte=timezone.now()
    )
    count = 0
    for key in expired:
        _revoke(key, actor=None, reason="Rotation grace period ended")
        count += 1
    return count


def _reminder_recipients(key: ProviderKey) -> list[str]:
    custodians = User.objects.filter(groups__name=Role.KEY_CUSTODIANS.value, is_active=True).exclude(email="")
    emails = {key.owner.email, *custodians.values_list("email", flat=True)}
    return sorted(email for email in emails if email)


def _reminder_email_send(key: ProviderKey, when: str) -> None:
    send_mail(
        subject=f"[Tollgate] Rotate the {key.environment} Anthropic key '{key.label}'",
        message=(
            f"The provider key '{key.label}' for {key.environment} (ending …{key.last_four}) {when}: "
            f"rotation is due on {key.next_due.date().isoformat()}.\n"
            "Rotate it in the Tollgate admin under Keys and API clients → Provider keys."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=_reminder_recipients(key),
    )


def provider_key_reminders_send(*, today: date | None = None) -> list[KeyReminder]:
    """Remind about rotations due in 14, 7 and 1 days, and daily once overdue; once per key and day."""
    today = today or timezone.localdate()
    sent: list[KeyReminder] = []
    for key in ProviderKey.objects.filter(status=KeyStatus.ACTIVE).select_related("owner"):
        days_left = (key.next_due.date() - today).days
        if days_left not in REMINDER_DAYS and days_left > 0:
            continue
        with transaction.atomic():
            reminder, created = KeyReminder.objects.get_or_create(key=key, day=today, defaults={"days_left": days_left})
            if not created:
                continue
            when = f"is overdue by {-days_left} day(s)" if days_left <= 0 else f"is due in {days_left} day(s)"
            _audit_key("provider_key.rotation_reminder", key, None, days_left=days_left)
            transaction.on_commit(partial(_reminder_email_send, key, when))
        sent.append(reminder)
    return sent


# --- API clients and tokens -----------------------------------------------------------------------------


def _client_aad(client: ApiClient) -> bytes:
    return associated_data(kind="webhook_secret", row=str(client.uid), environment=client.environment)


def _new_webhook_secret(client: ApiClient) -> str:
    secret = "whsec_" + secrets.token_urlsafe(32)
    sealed = seal(secret, aad=_client_aad(client))
    client.webhook_secret_ciphertext, client.webhook_secret_kek_id = sealed.ciphertext, sealed.key_id
    return secret


def api_client_webhook_secret(*, client: ApiClient) -> str:
    """The webhook signing secret, for signing deliveries."""
    return unseal(Sealed(client.webhook_secret_ciphertext, client.webhook_secret_kek_id), aad=_client_aad(client))


def _audit_client(action: str, client: ApiClient, actor: User, reason: str = "", **changes: Any) -> None:
    audit_event_record(
        action=action, actor=actor, target=client, changes={"environment": client.environment, **changes}, reason=reason
    )


@transaction.atomic
def api_client_create(
    *,
    actor: User,
    name: str,
    environment: str,
    owner: User,
    team: str = "",
    all_prompts: bool = False,
    allowed_prompts: list[str] | None = None,
    rate_limit_per_minute: int = 60,
    monthly_cap_usd: Decimal | None = None,
    expires_at: datetime | None = None,
    freeform: bool = False,
    freeform_models: list[str] | None = None,
    freeform_max_tokens: int = 4096,
    freeform_media: bool = False,
    scopes: list[str] | None = None,
    networks: list[str] | None = None,
    signature_required: bool = False,
) -> tuple[ApiClient, str]:
    """A new client and its webhook secret (returned once, to show once). It has no request signing secret
    yet (api_client_rotate_signing_secret makes one), so it cannot require signed requests yet."""
    require_permission(actor, "keys.add_apiclient", "create API clients")
    client = ApiClient(
        name=name,
        environment=environment,
        owner=owner,
        team=team,
        all_prompts=all_prompts,
        allowed_prompts=sorted(set(allowed_prompts or [])),
        rate_limit_per_minute=rate_limit_per_minute,
        monthly_cap_usd=monthly_cap_usd,
        expires_at=expires_at,
        freeform=freeform,
        freeform_models=sorted(set(freeform_models or [])),
        freeform_max_tokens=freeform_max_tokens,
        freeform_media=freeform_media,
        scopes=all_scopes() if scopes is None else list(scopes),
        networks=list(networks or []),
        signature_required=signature_required,
        created_by=actor,
    )
    webhook_secret = _new_webhook_secret(client)
    client.full_clean()
    save_with_history(client, actor=actor, reason="Client created")
    _audit_client(
        "api_client.create",
        client,
        actor,
        all_prompts=all_prompts,
        allowed_prompts=client.allowed_prompts,
        rate_limit_per_minute=rate_limit_per_minute,
        monthly_cap_usd=str(monthly_cap_usd) if monthly_cap_usd is not None else None,
        freeform=freeform,
        freeform_models=client.freeform_models,
        freeform_max_tokens=freeform_max_tokens,
        freeform_media=freeform_media,
        scopes=client.scopes,
        networks=client.networks,
        signature_required=signature_required,
    )
    return client, webhook_secret


@transaction.atomic
def api_client_update(*, actor: User, client: ApiClient, reason: str, **changes: Any) -> ApiClient:
    require_permission(actor, "keys.change_apiclient", "change API clients")
    reason = require_reason(reason, "change an API client")
    if "networks" in changes:  # as they are stored, so that the audit trail records what changed
        changes["networks"] = ApiClient(networks=changes["networks"]).networks_cleaned()
    client, changed = governed_update(
        client, actor=actor, reason=reason, changes=changes, fields=CLIENT_SETTINGS, refuse=_refuse_fields
    )
    action = "api_client.cap_change" if "monthly_cap_usd" in changed else "api_client.update"
    _audit_client(action, client, actor, reason, **changed)
    return client


@transaction.atomic
def api_client_set_active(*, actor: User, client: ApiClient, active: bool, reason: str) -> ApiClient:
    """Cut a client off (or let it back in). Takes effect on its next request."""
    require_permission(actor, "keys.change_apiclient", "activate or deactivate API clients")
    reason = require_reason(reason, "activate or deactivate a client")
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    client.is_active = active
    save_with_history(client, actor=actor, reason=reason)
    _audit_client("api_client.activate" if active else "api_client.deactivate", client, actor, reason)
    return client


@transaction.atomic
def api_client_rotate_webhook_secret(*, actor: User, client: ApiClient, reason: str) -> str:
    require_permission(actor, "keys.change_apiclient", "rotate webhook secrets")
    reason = require_reason(reason, "rotate a webhook secret")
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    secret = _new_webhook_secret(client)
    save_with_history(client, actor=actor, reason=reason)
    _audit_client("api_client.webhook_secret_rotate", client, actor, reason)
    return secret


def _signing_aad(client: ApiClient) -> bytes:
    return associated_data(kind="signing_secret", row=str(client.uid), environment=client.environment)


def api_client_signing_secret(*, client: ApiClient) -> str:
    """The request signing secret, for verifying a signed request. DecryptionFailed when it does not unseal
    (or the client has none)."""
    if not client.has_signing_secret:
        raise DecryptionFailed("the API client has no signing secret")
    return unseal(Sealed(client.signing_secret_ciphertext, client.signing_secret_kek_id), aad=_signing_aad(client))


@transaction.atomic
def api_client_rotate_signing_secret(*, actor: User, client: ApiClient, reason: str) -> str:
    """A new request signing secret for `client` (its first, or one replacing the old at once: a request
    signed with the old one is refused from the next request on). Returned once, to show once."""
    require_permission(actor, "keys.change_apiclient", "rotate request signing secrets")
    reason = require_reason(reason, "rotate a request signing secret")
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    replaced = client.has_signing_secret
    secret = "tgsig_" + secrets.token_urlsafe(32)
    sealed = seal(secret, aad=_signing_aad(client))
    client.signing_secret_ciphertext, client.signing_secret_kek_id = sealed.ciphertext, sealed.key_id
    client.signing_secret_created_at = timezone.now()
    save_with_history(client, actor=actor, reason=reason)
    _audit_client("api_client.signing_secret_rotate", client, actor, reason, replaced=replaced)
    return secret


_SIGNED_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_SIGNED_NONCE = re.compile(r"[A-Za-z0-9_-]{8,128}")
_SIGNATURE = re.compile(r"v1=[0-9a-f]{64}")


def request_signature_refusal(
    *,
    client: ApiClient,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: Callable[[], bytes],
) -> SignatureRefused | None:
    """Why this request of `client` is refused for its signature (docs/api.md, "Signed requests"), or None:
    always None for a client that does not require signed requests.

    `path` is percent-decoded, `query` as sent; `body()` reads the exact bytes received, and is called only
    once the headers are well-formed and in time. The signature is compared in constant time; an accepted
    one is remembered in the cache (Redis in production) for twice the window, so that it is accepted once
    (a timestamp can be up to the window ahead of the first time it is seen, and up to the window behind
    the last)."""
    if not client.signature_required:
        return None
    timestamp, nonce, presented = (headers.get(name) for name in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER))
    if timestamp is None or nonce is None or presented is None:
        return SignatureRequired(
            f"This API client requires signed requests: send {TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER}."
        )
    if not _SIGNED_TIMESTAMP.fullmatch(timestamp):
        return SignatureInvalid(f"{TIMESTAMP_HEADER} must be the time in whole seconds since the Unix epoch.")
    if not _SIGNED_NONCE.fullmatch(nonce):
        return SignatureInvalid(f"{NONCE_HEADER} must be 8 to 128 letters, digits, '-' or '_'.")
    if not _SIGNATURE.fullmatch(presented):
        return SignatureInvalid(f"{SIGNATURE_HEADER} must be 'v1=' and 64 lowercase hexadecimal digits.")
    window: int = settings.TOLLGATE_SIGNATURE_WINDOW_SECONDS
    if abs(time.time() - int(timestamp)) > window:
        return SignatureStale(
            f"{TIMESTAMP_HEADER} is more than {window} seconds from Tollgate's clock: sign each request when it "
            "is sent (a retry too), with a synchronized clock."
        )
    invalid = SignatureInvalid("The signature does not match this request under the client's signing secret.")
    try:
        secret = api_client_signing_secret(client=client)
        received = body()
    except DecryptionFailed as exc:  # like a provider key's: a security event, recorded durably
        logger.critical("The signing secret of API client %s failed to decrypt: %s", client.pk, exc)
        with transaction.atomic():
            audit_event_record(
                action="security.decryption_failed",
                actor_repr="system",
                target=client,
                changes={"kek_id": client.signing_secret_kek_id, "error": str(exc)},
            )
        return invalid
    except RawPostDataException:  # the body was consumed as a stream before this check: a bug, fail closed
        logger.error("A signed request's body was read before its signature was checked")
        return invalid
    canonical = canonical_string(method=method, path=path, query=query, timestamp=timestamp, nonce=nonce, body=received)
    if not hmac.compare_digest(signature(secret, canonical), presented):
        return invalid
    if not cache.add(f"signature:{client.uid}:{presented[3:]}", 1, timeout=2 * window + 1):
        return SignatureReplayed("This signature was already accepted: sign each request, a retry too, afresh.")
    return None


@transaction.atomic
def api_token_issue(
    *, actor: User, client: ApiClient, label: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for `client`; the plaintext is returned once and never stored. It expires within
    TOLLGATE_API_TOKEN_MAX_DAYS: no expiry given means exactly then, a later one is refused."""
    require_permission(actor, "keys.add_apitoken", "issue API tokens")
    if not label.strip():
        raise KeyOperationRefused("Give the token a label (where it will be used).")
    now = timezone.now()
    latest = now + token_max_lifetime()
    if expires_at is None:
        expires_at = latest
    elif expires_at > latest:
        raise KeyOperationRefused(
            f"A token may live at most {settings.TOLLGATE_API_TOKEN_MAX_DAYS} days: "
            f"give an expiry no later than {latest:%Y-%m-%d %H:%M} UTC."
        )
    plaintext = token_generate(client.environment)
    parsed = token_parse(plaintext)
    assert parsed is not None  # a token we just made always parses
    token = ApiToken(
        client=client,
        label=label.strip(),
        lookup_id=parsed[1],
        token_digest=token_digest(plaintext),
        created_by=actor,
        created_at=now,
        expires_at=expires_at,
    )
    save_with_history(token, actor=actor, reason="Token issued")
    _audit_client(
        "api_token.issue", client, actor, token=token.label, token_id=token.pk, expires_at=audit_value(expires_at)
    )
    return token, plaintext


@transaction.atomic
def api_token_revoke(*, actor: User, token: ApiToken, reason: str) -> ApiToken:
    require_permission(actor, "keys.change_apitoken", "revoke API tokens")
    reason = require_reason(reason, "revoke a token")
    token = ApiToken.objects.select_for_update().select_related("client").get(pk=token.pk)
    if token.revoked_at is not None:
        raise KeyOperationRefused(f"{token} is already revoked.")
    token.revoked_at, token.revoked_by = timezone.now(), actor
    save_with_history(token, actor=actor, reason=reason)
    _audit_client("api_token.revoke", token.client, actor, reason, token=token.label, token_id=token.pk)
    return token


def token_max_lifetime() -> timedelta:
    return timedelta(days=settings.TOLLGATE_API_TOKEN_MAX_DAYS)


_tokens: HotCache[str, ApiToken] = HotCache()
_last_used: dict[str, datetime] = {}  # when this process last wrote each token's last_used_at, by lookup id


def _token_read(lookup_id: str) -> ApiToken:
    """The token and its client from the database. An unknown one raises, so it is never kept."""
    try:  # get(), not first(): lookup_id is unique, and first() orders by the model's ordering
        return ApiToken.objects.select_related("client").get(lookup_id=lookup_id)
    except ApiToken.DoesNotExist:
        raise AuthenticationFailed("The token is not known.", reason="unknown") from None


def _token_refusal(token: ApiToken, digest: str, environment: str, now: datetime) -> AuthenticationFailed | None:
    """Why `token` (with its client) may not run a request carrying `digest` in `environment`, or None."""
    client = token.client
    if not secrets.compare_digest(token.token_digest, digest):
        return AuthenticationFailed("The token is not known.", reason="unknown")
    if token.revoked_at is not None:
        return AuthenticationFailed("The token was revoked.", reason="revoked")
    if token.expires_at is not None and token.expires_at <= now:
        return AuthenticationFailed("The token has expired.", reason="expired")
    if token.expires_at is None and token.created_at <= now - token_max_lifetime():
        return AuthenticationFailed(
            "The token was issued without an expiry and is older than the longest lifetime a token may have.",
            reason="expired",
        )
    if not client.is_active:
        return AuthenticationFailed("The API client is deactivated.", reason="client_inactive")
    if client.expires_at is not None and client.expires_at <= now:
        return AuthenticationFailed("The API client has expired.", reason="client_expired")
    if client.environment != environment:
        return AuthenticationFailed("The token does not belong to this client's environment.", reason="unknown")
    return None


@lru_cache(maxsize=1024)
def _networks(networks: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(network) for network in networks)


def api_client_refusal(client: ApiClient, *, scope: str | None, address: str | None) -> DomainError | None:
    """Why `client` may not call an endpoint requiring `scope` from `address`, or None. No scope (an
    endpoint that declares none) is refused: access fails closed. With networks, an address that is not
    known or not in one of them is refused."""
    if scope is None or scope not in client.scopes:
        return ScopeRequired(
            f"This API client's scopes do not include '{scope}', which this endpoint requires."
            if scope
            else "This endpoint declares no scope: no API client may call it.",
            scope=scope,
        )
    if client.networks:
        try:
            ip = ip_address(address or "")
        except ValueError:
            candidates: tuple[IPv4Address | IPv6Address, ...] = ()
        else:  # an IPv4 peer of a dual-stack socket arrives as ::ffff:a.b.c.d
            mapped = ip.ipv4_mapped if isinstance(ip, IPv6Address) else None
            candidates = (ip,) if mapped is None else (ip, mapped)
        networks = _networks(tuple(client.networks))
        if not any(candidate in network for candidate in candidates for network in networks):
            return NetworkNotAllowed("This API client's requests must come from its networks; this one does not.")
    return None


def api_token_authenticate(raw: str, *, count_rate: Callable[[ApiClient], bool] | None = None) -> ApiToken:
    """The live token behind `raw`, with its client; raises AuthenticationFailed saying why not.

    A malformed token or one with a bad checksum is refused before any database query. The digest is
    compared in constant time. The token and its client come from the hot cache (docs/contract.md §12);
    every check below runs on every request. `count_rate(client)`: the request counts toward the client's
    rate limit (the view counts and the client may call it: api_client_refusal); when the token is cached
    it is counted in the round trip that reads the generation (a token never changes client, so even a
    stale entry names the right counter).
    """
    parsed = token_parse(raw)
    if parsed is None:
        raise AuthenticationFailed("The token is malformed or its checksum does not match.", reason="malformed")
    environment, lookup_id = parsed
    digest = token_digest(raw)
    now = timezone.now()
    seen = _tokens.peek(lookup_id) if count_rate is not None else None
    # Only a request that may run counts: a wrong secret counts for nobody, and a refused (revoked, expired,
    # out of scope or network) token replayed must not use up its client's window.
    if (
        seen is not None
        and count_rate is not None
        and _token_refusal(seen, digest, environment, now) is None
        and count_rate(seen.client)
    ):
        observe(rate_limit_counter(seen.client.uid), counter_seconds=2 * WINDOW_SECONDS)
    token = _tokens.get(lookup_id, partial(_token_read, lookup_id))
    if refusal := _token_refusal(token, digest, environment, now):
        raise refusal
    last_used = max(filter(None, (token.last_used_at, _last_used.get(lookup_id))), default=None)
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        # A plain UPDATE: the last-used time is kept out of the change history (and bumps no generation),
        # and written at most once a minute per token so busy clients do not turn every request into a write.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        _last_used[lookup_id] = now
    return token


def reencrypt_secrets() -> dict[str, int]:
    """Re-seal every stored secret under the primary key-encryption key. Returns counts per kind."""
    primary = primary_key_id()
    counts = {"provider_keys": 0, "webhook_secrets": 0, "signing_secrets": 0}
    for key in ProviderKey.objects.exclude(secret_kek_id=primary).iterator():
        with transaction.atomic():
            sealed = seal(provider_key_secret(key=key), aad=_key_aad(key))
            ProviderKey.objects.filter(pk=key.pk).update(
                secret_ciphertext=sealed.ciphertext, secret_kek_id=sealed.key_id
            )
            generation_bump()  # a plain UPDATE: no signal tells the hot cache
            counts["provider_keys"] += 1
    for client in ApiClient.objects.exclude(webhook_secret_kek_id=primary).iterator():
        with transaction.atomic():
            sealed = seal(api_client_webhook_secret(client=client), aad=_client_aad(client))
            ApiClient.objects.filter(pk=client.pk).update(
                webhook_secret_ciphertext=sealed.ciphertext, webhook_secret_kek_id=sealed.key_id
            )
            generation_bump()
            counts["webhook_secrets"] += 1
    signing = ApiClient.objects.exclude(signing_secret_ciphertext="").exclude(signing_secret_kek_id=primary)
    for client in signing.iterator():
        with transaction.atomic():
            sealed = seal(api_client_signing_secret(client=client), aad=_signing_aad(client))
            ApiClient.objects.filter(pk=client.pk).update(
                signing_secret_ciphertext=sealed.ciphertext, signing_secret_kek_id=sealed.key_id
            )
            generation_bump()
            counts["signing_secrets"] += 1
    if any(counts.values()):
        with transaction.atomic():
            audit_event_record(
                action="secrets.reencrypt", actor_repr="system", changes={"primary_kek_id": primary, **counts}
            )
    return counts
