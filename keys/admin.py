"""Provider keys and API clients in the admin, for key custodians.

Secrets are write-only: a key's secret is typed once into a password field, and a token, webhook or
request signing secret appears once, on the page that answers the request that made it (never in a message, a
redirect or a cache). Every change goes through `keys.services`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnlyMixin, action_page
from core.errors import DomainError
from core.scopes import Scope
from keys import services
from keys.models import DEFAULT_BASE_URL, ApiClient, ApiToken, KeyStatus, ProviderKey
from keys.selectors import rotation_state
from usage.choices import CapScope, Period
from usage.selectors import spent


def _user(request: HttpRequest) -> User:
    user: User = request.user  # type: ignore[assignment]
    return user


def shown_once(
    request: HttpRequest, *, title: str, items: list[tuple[str, str]], back: str, admin_site: Any
) -> HttpResponse:
    """The only page that ever shows a new secret: not cached, not stored, not redirected to."""
    response = TemplateResponse(
        request,
        "admin/keys/shown_once.html",
        {**admin_site.each_context(request), "title": title, "items": items, "back": back},
    )
    add_never_cache_headers(response)
    return response


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))


# --- provider keys ---------------------------------------------------------------------------------------


class ProviderKeyCreateForm(forms.ModelForm):  # type: ignore[type-arg]
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        strip=True,
        help_text="The Anthropic API key. It is encrypted at once and never shown again.",
    )
    base_url = forms.URLField(assume_scheme="https", initial=DEFAULT_BASE_URL, required=False)

    class Meta:
        model = ProviderKey
        fields = [
            "environment",
            "label",
            "secret",
            "owner",
            "base_url",
            "monthly_cap_usd",
            "daily_cap_usd",
            "rotation_period_days",
            "alert_threshold_percent",
        ]


class ProviderKeyChangeForm(forms.ModelForm):  # type: ignore[type-arg]
    base_url = forms.URLField(assume_scheme="https")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why this change.")

    class Meta:
        model = ProviderKey
        fields = list(services.KEY_SETTINGS)


class RotateForm(ReasonForm):
    new_secret = forms.CharField(widget=forms.PasswordInput(render_value=False), strip=True)
    grace_hours = forms.IntegerField(
        min_value=0, max_value=168, initial=0, help_text="Keep the old key usable this long for in-flight work."
    )


@admin.register(ProviderKey)
class ProviderKeyAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    list_display = ["label", "environment", "masked", "fingerprint", "status", "age_days", "due", "month_spend"]
    list_filter = ["environment", "status"]
    list_select_related = ["owner"]
    change_form_template = "admin/keys/providerkey/change_form.html"
    readonly_fields = [
        "masked",
        "fingerprint",
        "status",
        "created_by",
        "created_at",
        "last_rotated_at",
        "due",
        "retiring_until",
        "revoked_by",
        "revoked_at",
    ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = ProviderKeyChangeForm if obj is not None else ProviderKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ProviderKey | None = None) -> list[str]:
        if obj is None:
            return list(ProviderKeyCreateForm.Meta.fields)
        return ["environment", *services.KEY_SETTINGS, "reason", *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: ProviderKey | None = None) -> list[str]:
        return ["environment", *self.readonly_fields] if obj is not None else []

    @admin.display(description="key")
    def masked(self, obj: ProviderKey) -> str:
        return f"…{obj.last_four}"

    @admin.display(description="age (days)")
    def age_days(self, obj: ProviderKey) -> int:
        return (timezone.now() - obj.last_rotated_at).days

    @admin.display(description="rotation")
    def due(self, obj: ProviderKey) -> str:
        if obj.status != KeyStatus.ACTIVE:
            return "—"
        state = rotation_state(obj)
        return format_html(
            '<span class="tg-badge tg-badge-{}" title="due {}">{}</span>',
            state.replace(" ", "-"),
            obj.next_due.date().isoformat(),
            state,
        )

    @admin.display(description="spend this month / cap (USD)")
    def month_spend(self, obj: ProviderKey) -> str:
        amount = spent(scope=CapScope.PROVIDER_KEY, scope_id=obj.cap_id, period=Period.MONTH)
        share = amount * 100 / obj.monthly_cap_usd if obj.monthly_cap_usd else Decimal(0)
        return f"{amount:.2f} / {obj.monthly_cap_usd:.2f} ({share:.0f} %)"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are revoked, never deleted: the inventory keeps them

    def save_model(self, request: HttpRequest, obj: ProviderKey, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        data = form.cleaned_data
        if change:
            fields = {name: data[name] for name in form.changed_data if name in services.KEY_SETTINGS}
            services.provider_key_update(
                actor=_user(request), key=ProviderKey.objects.get(pk=obj.pk), reason=data["reason"], **fields
            )
            return
        created = services.provider_key_create(
            actor=_user(request), **{name: data[name] for name in ProviderKeyCreateForm.Meta.fields}
        )
        obj.pk = created.pk
        obj._state.adding = False

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[no-any-return]
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/rotate/", self.admin_site.admin_view(self.rotate_view), name="keys_providerkey_rotate"
            ),
            path(
                "<int:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view), name="keys_providerkey_revoke"
            ),
            *super().get_urls(),
        ]

    def _action_page(
        self, request: HttpRequest, key: ProviderKey, form: forms.Form, title: str, submit: str
    ) -> HttpResponse:
        return action_page(self, request, obj=key, form=form, title=title, submit=submit)

    def rotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        key = get_object_or_404(ProviderKey, pk=object_id)
        if not self.has_change_permission(request, key):
            raise PermissionDenied
        form = RotateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                new = services.provider_key_rotate(
                    actor=_user(request),
                    key=key,
                    new_secret=form.cleaned_data["new_secret"],
                    grace_hours=form.cleaned_data["grace_hours"],
                    reason=form.cleaned_data["reason"],
                )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                self.message_user(request, f"Rotated: {new} is now active.")
                return HttpResponseRedirect(reverse("admin:keys_providerkey_change", args=[new.pk]))
        return self._action_page(request, key, form, f"Rotate {key}", "Rotate")

    def revoke_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        key = get_object_or_404(ProviderKey, pk=object_id)
        if not self.has_change_permission(request, key):
            raise PermissionDenied
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.provider_key_revoke(actor=_user(request), key=key, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                self.message_user(request, f"{key} is revoked.")
                return HttpResponseRedirect(reverse("admin:keys_providerkey_changelist"))
        return self._action_page(request, key, form, f"Revoke {key}", "Revoke")


# --- API clients ---------------------------------------------------------------------------------------


class SlugListField(forms.CharField):
    """Names (prompt slugs, model ids), comma- or newline-separated."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return sorted({part.strip() for part in text.replace("\n", ",").split(",") if part.strip()})


class ApiClientForm(forms.ModelForm):  # type: ignore[type-arg]
    allowed_prompts = SlugListField(
        required=False, help_text="Prompt slugs, comma-separated (ignored with all prompts)."
    )
    freeform_models = SlugListField(
        required=False, label="Free-form models", help_text="Model ids, comma-separated (free-form calls only)."
    )
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What its tokens may call; an endpoint outside them answers 403 scope_required.",
    )
    networks = SlugListField(
        required=False,
        help_text="CIDR networks its requests must come from, comma-separated (e.g. 10.20.0.0/16, 2001:db8::/48); "
        "empty: any address. Others answer 403 network_not_allowed.",
    )
    signature_required = forms.BooleanField(
        required=False,
        label="Signed requests required",
        help_text="Every request must carry an HMAC signature made with the client's signing secret (docs: REST "
        "API, signed requests); unsigned ones answer 401 signature_required. Generate the secret first.",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Why (when editing).")

    class Meta:
        model = ApiClient
        fields = ["environment", *services.CLIENT_SETTINGS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "freeform_max_tokens" in self.fields:  # not for a reader: the read-only page has no such field
            self.fields["freeform_max_tokens"].required = False  # left empty: the default ceiling

    def clean_freeform_max_tokens(self) -> int:
        value = self.cleaned_data.get("freeform_max_tokens")
        return int(value) if value is not None else int(ApiClient._meta.get_field("freeform_max_tokens").default)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Say why the client changes: the reason goes into its history.")
        if cleaned.get("signature_required") and not self.instance.has_signing_secret:
            self.add_error(
                "signature_required",
                "Generate the client's signing secret first (Rotate signing secret, once the client exists).",
            )
        return cleaned


class TokenForm(forms.Form):
    label = forms.CharField(max_length=100, help_text="Where the token will be used, e.g. 'billing-service prod'.")
    expires_at = forms.DateTimeField(required=False, help_text="Optional. YYYY-MM-DD HH:MM (UTC).")


@admin.register(ApiClient)
class ApiClientAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    form = ApiClientForm
    list_display = [
        "name",
        "environment",
        "team",
        "owner",
        "is_active",
        "rate_limit_per_minute",
        "monthly_cap_usd",
        "live_tokens",
    ]
    list_filter = ["environment", "is_active"]
    search_fields = ["name", "team"]
    change_form_template = "admin/keys/apiclient/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        queryset: QuerySet[ApiClient] = super().get_queryset(request)
        return queryset.select_related("owner").annotate(
            live=Count("tokens", filter=Q(tokens__revoked_at__isnull=True))
        )

    @admin.display(description="tokens", ordering="live")
    def live_tokens(self, obj: ApiClient) -> int:
        return obj.live  # type: ignore[attr-defined, no-any-return]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> list[str]:
        return ["environment", "signing_secret", "is_active", "created_by", "created_at"] if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> list[str]:
        fields = list(ApiClientForm.Meta.fields)
        if obj is None:
            return fields
        return [*fields, "signing_secret", "reason", "is_active", "created_by", "created_at"]

    @admin.display(description="signing secret")
    def signing_secret(self, obj: ApiClient) -> str:
        """Whether the client has a request signing secret and since when; never the secret."""
        if obj.signing_secret_created_at is None:
            return "none (Rotate signing secret makes one)"
        return f"set {obj.signing_secret_created_at:%Y-%m-%d %H:%M} UTC"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # clients are deactivated, never deleted

    def save_model(self, request: HttpRequest, obj: ApiClient, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        data = form.cleaned_data
        if change:
            fields = {name: data[name] for name in form.changed_data if name in services.CLIENT_SETTINGS}
            services.api_client_update(
                actor=_user(request), client=ApiClient.objects.get(pk=obj.pk), reason=data["reason"], **fields
            )
            return
        created, webhook_secret = services.api_client_create(
            actor=_user(request), **{name: data[name] for name in ApiClientForm.Meta.fields}
        )
        obj.pk = created.pk
        obj._state.adding = False
        request._tollgate_webhook_secret = webhook_secret  # type: ignore[attr-defined]  # shown by response_add

    def response_add(self, request: HttpRequest, obj: ApiClient, post_url_continue: str | None = None) -> HttpResponse:
        return shown_once(
            request,
            title=f"API client {obj} created",
            items=[("Webhook signing secret", request._tollgate_webhook_secret)],  # type: ignore[attr-defined]
            back=reverse("admin:keys_apiclient_change", args=[obj.pk]),
            admin_site=self.admin_site,
        )

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        if object_id:
            extra_context["tokens"] = ApiToken.objects.filter(client_id=int(object_id)).select_related("created_by")
        return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[no-any-return]

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/tokens/new/", view(self.issue_token_view), name="keys_apiclient_issue_token"),
            path(
                "<int:object_id>/tokens/<int:token_id>/revoke/",
                view(self.revoke_token_view),
                name="keys_apiclient_revoke_token",
            ),
            path("<int:object_id>/active/", view(self.set_active_view), name="keys_apiclient_set_active"),
            path(
                "<int:object_id>/webhook-secret/", view(self.webhook_secret_view), name="keys_apiclient_webhook_secret"
            ),
            path(
                "<int:object_id>/signing-secret/", view(self.signing_secret_view), name="keys_apiclient_signing_secret"
            ),
            *super().get_urls(),
        ]

    def _client(self, request: HttpRequest, object_id: int) -> ApiClient:
        client = get_object_or_404(ApiClient, pk=object_id)
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        return client

    def _page(
        self,
        request: HttpRequest,
        client: ApiClient,
        form: forms.Form,
        title: str,
        submit: str,
        facts: list[tuple[str, str]] | None = None,
    ) -> HttpResponse:
        return action_page(self, request, obj=client, form=form, title=title, submit=submit, facts=facts)

    def issue_token_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        client = self._client(request, object_id)
        form = TokenForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                token, plaintext = services.api_token_issue(
                    actor=_user(request),
                    client=client,
                    label=form.cleaned_data["label"],
                    expires_at=form.cleaned_data["expires_at"],
                )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                return shown_once(
                    request,
                    title=f"Token '{token.label}' for {client}",
                    items=[("API token", plaintext)],
                    back=reverse("admin:keys_apiclient_change", args=[client.pk]),
                    admin_site=self.admin_site,
                )
        max_days = settings.TOLLGATE_API_TOKEN_MAX_DAYS
        facts = [
            ("Scopes", ", ".join(client.scopes) or "none: the token can call nothing"),
            ("Networks", ", ".join(client.networks) or "any address"),
            ("Longest lifetime", f"{max_days} days (no expiry given: {max_days} days from now)"),
        ]
        return self._page(request, client, form, f"Issue a token for {client}", "Issue token", facts)

    def revoke_token_view(self, request: HttpRequest, object_id: int, token_id: int) -> HttpResponse:
        client = self._client(request, object_id)
        token = get_object_or_404(ApiToken, pk=token_id, client=client)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.api_token_revoke(actor=_user(request), token=token, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                self.message_user(request, f"Token '{token.label}' is revoked.")
                return HttpResponseRedirect(reverse("admin:keys_apiclient_change", args=[client.pk]))
        return self._page(request, client, form, f"Revoke token '{token.label}' of {client}", "Revoke token")

    def set_active_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        client = self._client(request, object_id)
        activate = not client.is_active
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            services.api_client_set_active(
                actor=_user(request), client=client, active=activate, reason=form.cleaned_data["reason"]
            )
            self.message_user(request, f"{client} is {'active' if activate else 'deactivated'}.")
            return HttpResponseRedirect(reverse("admin:keys_apiclient_change", args=[client.pk]))
        verb = "Reactivate" if activate else "Deactivate"
        return self._page(request, client, form, f"{verb} {client}", verb)

    def webhook_secret_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        client = self._client(request, object_id)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            secret = services.api_client_rotate_webhook_secret(
                actor=_user(request), client=client, reason=form.cleaned_data["reason"]
            )
            return shown_once(
                request,
                title=f"New webhook signing secret for {client}",
                items=[("Webhook signing secret", secret)],
                back=reverse("admin:keys_apiclient_change", args=[client.pk]),
                admin_site=self.admin_site,
            )
        return self._page(request, client, form, f"Rotate the webhook secret of {client}", "Rotate secret")

    def signing_secret_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        client = self._client(request, object_id)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                secret = services.api_client_rotate_signing_secret(
                    actor=_user(request), client=client, reason=form.cleaned_data["reason"]
                )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                return shown_once(
                    request,
                    title=f"New request signing secret for {client}",
                    items=[("Request signing secret", secret)],
                    back=reverse("admin:keys_apiclient_change", args=[client.pk]),
                    admin_site=self.admin_site,
                )
        facts = [
            ("Signed requests", "required" if client.signature_required else "not required"),
            (
                "On rotation",
                "the current secret stops working at once: requests signed with it answer 401 signature_invalid",
            )
            if client.has_signing_secret
            else ("On generation", "the secret is shown once, on the next page"),
        ]
        verb = "Rotate" if client.has_signing_secret else "Generate"
        return self._page(
            request, client, form, f"{verb} the request signing secret of {client}", f"{verb} secret", facts
        )


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyMixin, SimpleHistoryAdmin):  # type: ignore[misc]
    """Every token, read-only: issue and revoke them from their client's page."""

    list_display = ["label", "client", "created_by", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["client__environment"]
    list_select_related = ["client", "created_by"]
    readonly_fields = [
        "client",
        "label",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    fields = readonly_fields
