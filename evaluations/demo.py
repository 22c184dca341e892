"""The demo data of `manage.py seed_demo`: one user per role, three approved prompts released everywhere,
a sandbox provider key and a demo API client per environment. Idempotent: what exists is left as it
is, except that each run issues every demo client a fresh token (only a token's hash is stored, so an
earlier one cannot be shown again) and revokes the demo token it replaces."""

from __future__ import annotations

from binascii import unhexlify
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone
from django_otp.oath import TOTP

from core.context import access_change
from core.environments import Environment
from core.mfa import mfa_enrolled, mfa_required
from core.roles import Role
from evaluations.models import EvaluationCase
from evaluations.services import evaluation_case_save
from identity.mfa import TOTP_DIGITS, mfa_totp_enrol, totp_key_text
from keys import services as key_services
from keys.models import ApiClient, ApiToken, KeyStatus, ProviderKey
from prompts import services
from prompts.models import Prompt

DEMO_PASSWORD = "tollgate-demo"  # noqa: S105  (demo accounts only; seed_demo refuses without DEBUG)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    created: bool


DEMO_USERS: list[tuple[str, Role | None]] = [
    ("admin", None),
    ("author", Role.PROMPT_AUTHORS),
    ("approver", Role.PROMPT_APPROVERS),
    ("custodian", Role.KEY_CUSTODIANS),
    ("auditor", Role.AUDITORS),
]


@transaction.atomic
def demo_users_seed() -> list[DemoLogin]:
    # Demo accounts get their roles directly (seed_demo runs only with DEBUG, and is audited as seed_demo).
    with access_change(actor_repr="seed_demo"):
        return _demo_users_create()


def _demo_users_create() -> list[DemoLogin]:
    logins: list[DemoLogin] = []
    for username, role in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@demo.tollgate.local", "is_staff": True, "is_superuser": role is None},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            if role is not None:
                user.groups.add(Group.objects.get(name=role.value))
        logins.append(DemoLogin(username=username, role=role.value if role else "Superuser", created=created))
    return logins


# The demo accounts whose roles require a second factor (TOLLGATE_MFA_REQUIRED_ROLES) are enrolled with one
# authenticator secret, known like the password: add it to an authenticator app, or let
# `manage.py demo_code` print its current code.
DEMO_TOTP_KEY = "746f6c6c676174652d64656d6f2d736563726574"  # 20 bytes, hex


def demo_code() -> str:
    """The demo authenticator's current code."""
    return f"{TOTP(unhexlify(DEMO_TOTP_KEY), digits=TOTP_DIGITS).token():0{TOTP_DIGITS}d}"


def demo_key_text() -> str:
    return totp_key_text(DEMO_TOTP_KEY)


def demo_mfa_seed() -> list[str]:
    """Enrol the demo accounts that must use a second factor and have none (audited as auth.mfa_enrol)."""
    enrolled = []
    for username, _ in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        if user is not None and mfa_required(user) and not mfa_enrolled(user):
            mfa_totp_enrol(actor=user, key=DEMO_TOTP_KEY, token=demo_code())
            enrolled.append(username)
    return enrolled


DEMO_PROMPTS: list[dict[str, Any]] = [
    {
        "slug": "support-summary",
        "name": "Support ticket summary",
        "purpose": "Summarises an incoming support ticket for the agent who picks it up.",
        "team": "support",
        "data_categories": ["personal"],
        "content": {
            "system_prompt": (
                "You summarise customer support tickets for support agents. Write three short bullet points: "
                "the problem, what the customer already tried, and what they ask for. Do not speculate. "
                "Never repeat payment card numbers or passwords even if the ticket contains them."
            ),
            "user_template": "Ticket from {{ customer_email }}:\n{{ ticket }}",
            "variables": [
                {"name": "ticket", "type": "string", "required": True, "max_length": 20000},
                {"name": "customer_email", "type": "string", "required": True, "max_length": 254, "sensitive": True},
            ],
            "model": "claude-sonnet-4-6",
            "max_tokens": 400,
            "stop_sequences": [],
            "cache_ttl": "5m",
            "routing": {"rules": [{"max_input_tokens": 800, "model": "claude-haiku-4-5"}]},
            "output_checks": {"max_length": 2000},
            "redaction": {"terms": ["Project Falcon"]},
        },
        "evaluation_cases": [
            {
                "name": "export button",
                "variables": {
                    "ticket": "The export button does nothing since this morning.",
                    "customer_email": "ops@example.com",
                },
                "expectations": [{"contains": "export button"}, {"regex": "since this \\w+"}],
            },
        ],
    },
    {
        "slug": "ticket-classifier",
        "name": "Ticket classifier",
        "purpose": "Sorts tickets into queues; also the classifier that routes other prompts.",
        "team": "support",
        "data_categories": ["none"],
        "content": {
            "system_prompt": (
                "Classify the support ticket. Answer with JSON only: "
                '{"category": "billing" | "technical" | "account" | "other", "urgent": true | false}.'
            ),
            "user_template": "{{ ticket }}",
            "variables": [{"name": "ticket", "type": "string", "required": True, "max_length": 20000}],
            "model": "claude-haiku-4-5",
            "max_tokens": 50,
            "stop_sequences": [],
            "cache_ttl": "off",
            "routing": {},
            "redaction": {},
            "output_checks": {
                "json_schema": {
                    "type": "object",
                    "required": ["category", "urgent"],
                    "properties": {
                        "category": {"enum": ["billing", "technical", "account", "other"]},
                        "urgent": {"type": "boolean"},
                    },
                }
            },
        },
    },
    {
        "slug": "email-draft",
        "name": "Customer e-mail draft",
        "purpose": "Drafts a reply to a customer for an agent to review before sending.",
        "team": "support",
        "data_categories": ["personal", "confidential"],
        "content": {
            "system_prompt": (
                "You draft replies to customers on behalf of a support agent. Be courteous and concrete, "
                "promise nothing the agent has not confirmed, and sign as 'The Support Team'."
            ),
            "user_template": "Customer name: {{ customer_name }}\nTheir issue: {{ issue }}\nTone: {{ tone }}",
            "variables": [
                {"name": "customer_name", "type": "string", "required": True, "max_length": 200, "sensitive": True},
                {"name": "issue", "type": "string", "required": True, "max_length": 10000},
                {"name": "tone", "type": "enum", "required": True, "choices": ["formal", "friendly"]},
            ],
            "model": "claude-sonnet-4-6",
            "max_tokens": 800,
            "stop_sequences": [],
            "cache_ttl": "5m",
            "routing": {},
            "output_checks": {"required_patterns": ["The Support Team"], "max_length": 6000},
            "redaction": {},
        },
    },
]


@transaction.atomic
def demo_prompts_seed() -> list[str]:
    """The demo prompts, written by `author`, approved and released everywhere by `approver`.

    Returns the slugs created now; existing prompts are left as they are.
    """
    author = User.objects.get(username="author")
    approver = User.objects.get(username="approver")
    created: list[str] = []
    for spec in DEMO_PROMPTS:
        if Prompt.objects.filter(slug=spec["slug"]).exists():
            continue
        prompt = services.prompt_create(
            actor=author,
            slug=spec["slug"],
            name=spec["name"],
            purpose=spec["purpose"],
            owner=author,
            team=spec["team"],
            data_categories=spec["data_categories"],
        )
        version = services.prompt_version_create(
            actor=author, prompt=prompt, content=spec["content"], change_summary="First version (demo data)"
        )
        services.prompt_version_submit(actor=author, version=version)
        for case in spec.get("evaluation_cases", []):
            evaluation_case_save(actor=author, case=EvaluationCase(prompt=prompt, **case), reason="Demo data")
        services.prompt_version_approve(actor=approver, version=version, note="Demo data: reviewed and approved")
        for environment in (Environment.DEVELOPMENT, Environment.STAGING, Environment.PRODUCTION):
            services.prompt_version_release(
                actor=approver, version=version, environment=environment, reason="Demo data"
            )
        created.append(prompt.slug)
    return created


DEMO_TOKEN_LABEL = "seed_demo"  # noqa: S105  (a label, not a secret)


@transaction.atomic
def demo_keys_seed() -> dict[str, str]:
    """A sandbox key and a demo client per environment; returns environment → a fresh client token."""
    custodian = User.objects.get(username="custodian")
    tokens: dict[str, str] = {}
    for environment in Environment.values:
        if not ProviderKey.objects.filter(environment=environment, status=KeyStatus.ACTIVE).exists():
            key_services.provider_key_create(
                actor=custodian,
                environment=environment,
                label=f"Sandbox key ({environment})",
                secret=f"sk-ant-sandbox-demo-{environment}-{environment[:3]}1",
                owner=custodian,
                base_url=settings.TOLLGATE_SANDBOX_URL,
                monthly_cap_usd=Decimal("100.00"),
                daily_cap_usd=Decimal("20.00"),
                reason="Demo data: sandbox key",
            )
        client = ApiClient.objects.filter(name=f"demo-{environment}", environment=environment).first()
        if client is None:
            client, _ = key_services.api_client_create(
                actor=custodian,
                name=f"demo-{environment}",
                team="demo",
                environment=environment,
                owner=custodian,
                all_prompts=True,
                rate_limit_per_minute=600,
                monthly_cap_usd=Decimal("50.00"),
            )
        for old in ApiToken.objects.filter(client=client, label=DEMO_TOKEN_LABEL, revoked_at__isnull=True):
            key_services.api_token_revoke(actor=custodian, token=old, reason="Replaced by a fresh demo token")
        _, tokens[environment] = key_services.api_token_issue(
            actor=custodian, client=client, label=DEMO_TOKEN_LABEL, expires_at=timezone.now() + timedelta(days=30)
        )
    return tokens
