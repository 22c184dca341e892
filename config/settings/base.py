"""Tollgate settings, read from the environment (docs/configuration.md).

The embedded default (no variables set, DJANGO_DEBUG=true) runs on SQLite, the local-memory cache and
in-process tasks. Production sets DATABASE_URL, REDIS_URL and the secrets; it refuses to start without
the secrets and passes `manage.py check --deploy`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from core.env import env, parse_encryption_keys, parse_retired_public_keys, parse_signing_key, secret, secret_optional

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)


def _dev_only(label: str) -> str:
    """A fixed value for local development; never accepted when DEBUG is false."""
    return base64.b64encode(hashlib.sha256(f"tollgate-development-only:{label}".encode()).digest()).decode()


SECRET_KEY = secret("DJANGO_SECRET_KEY", dev_default="dev-only-" + _dev_only("secret-key"), debug=DEBUG)
TOLLGATE_ENCRYPTION_KEYS = parse_encryption_keys(
    secret("TOLLGATE_ENCRYPTION_KEYS", dev_default="dev:" + _dev_only("kek"), debug=DEBUG)
)
TOLLGATE_AUDIT_SIGNING_KEY = parse_signing_key(
    secret("TOLLGATE_AUDIT_SIGNING_KEY", dev_default=_dev_only("audit-signing"), debug=DEBUG)
)
# The signing keys used before TOLLGATE_AUDIT_SIGNING_KEY, each with the last hour it signed: checkpoints up to
# that hour verify under it, later ones only under a later key (docs/operations.md, Rotating the audit signing key).
TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS = parse_retired_public_keys(
    env.str("TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS", default="")
)
# The key of the keyed hash (HMAC-SHA256) that turns a caller's end-user id into the pseudonym that is
# sent upstream and stored (usage.pseudonyms). Changing it changes every pseudonym.
TOLLGATE_PSEUDONYM_KEY: str = secret("TOLLGATE_PSEUDONYM_KEY", dev_default=_dev_only("pseudonyms"), debug=DEBUG)
# Phone numbers written as dialled at home (with their trunk 0, no country code) are recognised for these
# regions; with "+" or "00" and the country code, every region's are.
TOLLGATE_PHONE_REGIONS: list[str] = env.list(
    "TOLLGATE_PHONE_REGIONS", default=["GB", "DE", "FR", "IT", "ES", "NL", "IE", "AT", "CH", "IN", "JP", "AU"]
)
TOLLGATE_BODY_RETENTION_DAYS: int = env.int("TOLLGATE_BODY_RETENTION_DAYS", default=30)
# PostgreSQL: the ledger is partitioned by month (docs/capacity.md). Beat keeps this many months' partitions
# created ahead of the current one; `ledger_archive` archives (and detaches) months older than the retention,
# in months (0 keeps every month).
TOLLGATE_LEDGER_PARTITIONS_AHEAD: int = env.int("TOLLGATE_LEDGER_PARTITIONS_AHEAD", default=3)
TOLLGATE_LEDGER_RETENTION_MONTHS: int = env.int("TOLLGATE_LEDGER_RETENTION_MONTHS", default=0)
if TOLLGATE_LEDGER_PARTITIONS_AHEAD < 1 or TOLLGATE_LEDGER_RETENTION_MONTHS < 0:
    raise ImproperlyConfigured(
        "TOLLGATE_LEDGER_PARTITIONS_AHEAD is 1 or more; TOLLGATE_LEDGER_RETENTION_MONTHS 0 or more."
    )
# Audit checkpoints leave the database as they are made: one write-once file each in this directory,
# which the application must not be able to delete from (docs/audit.md, Keeping the anchors safe). Verification fails
# when no checkpoint covers the last whole hour once the grace after it has passed.
TOLLGATE_AUDIT_ANCHOR_DIR = Path(env.str("TOLLGATE_AUDIT_ANCHOR_DIR", default=str(VAR_DIR / "audit-anchors")))
TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES: int = env.int("TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES", default=15)
if TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES < 0:
    raise ImproperlyConfigured("TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES is a number of minutes, 0 or more.")
TOLLGATE_REQUIRE_STAGING_BEFORE_PRODUCTION: bool = env.bool("TOLLGATE_REQUIRE_STAGING_BEFORE_PRODUCTION", default=True)
# Calls to Anthropic: the SDK retries 408/409/429/5xx/timeouts with backoff, honouring retry-after.
TOLLGATE_UPSTREAM_TIMEOUT: float = env.float("TOLLGATE_UPSTREAM_TIMEOUT", default=120.0)
TOLLGATE_UPSTREAM_MAX_RETRIES: int = env.int("TOLLGATE_UPSTREAM_MAX_RETRIES", default=2)
# Larger API request bodies are refused with 413 before they are parsed.
# The queue (jobs and batches): each environment's upstream budget shared by all workers (in Redis when
# configured), how long a job's claim lasts before another worker may take it over, and webhooks.
TOLLGATE_QUEUE_RPM: int = env.int("TOLLGATE_QUEUE_RPM", default=1000)
TOLLGATE_QUEUE_CONCURRENCY: int = env.int("TOLLGATE_QUEUE_CONCURRENCY", default=16)
TOLLGATE_JOB_MAX_ATTEMPTS: int = env.int("TOLLGATE_JOB_MAX_ATTEMPTS", default=3)
TOLLGATE_JOB_LEASE_SECONDS: int = env.int(
    "TOLLGATE_JOB_LEASE_SECONDS", default=int(TOLLGATE_UPSTREAM_TIMEOUT * (TOLLGATE_UPSTREAM_MAX_RETRIES + 1)) + 60
)
# Work no worker has taken up this long after it was due — a job, a batch to send, a webhook attempt — (its
# message lost with a broker that restarted without it, or a publish that failed) is queued again.
TOLLGATE_REDISPATCH_SECONDS: int = env.int("TOLLGATE_REDISPATCH_SECONDS", default=300)
TOLLGATE_JOB_MAPPING_TTL_HOURS: int = env.int("TOLLGATE_JOB_MAPPING_TTL_HOURS", default=24)
TOLLGATE_WEBHOOK_MAX_ATTEMPTS: int = env.int("TOLLGATE_WEBHOOK_MAX_ATTEMPTS", default=8)
TOLLGATE_WEBHOOK_BACKOFF_SECONDS: float = env.float("TOLLGATE_WEBHOOK_BACKOFF_SECONDS", default=15.0)
TOLLGATE_WEBHOOK_ALLOW_LOOPBACK: bool = env.bool("TOLLGATE_WEBHOOK_ALLOW_LOOPBACK", default=DEBUG)
# Callback receivers allowed ("hooks.example.com", "*.example.com" for the names under it); empty: any
# public host. The address checks of gateway.egress apply either way.
TOLLGATE_WEBHOOK_ALLOWED_HOSTS: list[str] = [
    host.strip().lower() for host in env.list("TOLLGATE_WEBHOOK_ALLOWED_HOSTS", default=[]) if host.strip()
]
TOLLGATE_BATCH_POLL_SECONDS: float = env.float("TOLLGATE_BATCH_POLL_SECONDS", default=30.0)

# Alerts on the last whole hour's roll-ups (with at least MIN_CALLS calls): p95 latency of a prompt, and
# the share of an upstream error class in an environment's calls.
TOLLGATE_ALERT_P95_MS: int = env.int("TOLLGATE_ALERT_P95_MS", default=10_000)
TOLLGATE_ALERT_ERROR_RATE: float = env.float("TOLLGATE_ALERT_ERROR_RATE", default=0.05)
TOLLGATE_ALERT_MIN_CALLS: int = env.int("TOLLGATE_ALERT_MIN_CALLS", default=20)

# Evaluation suites (evaluations.services): whose provider key and caps pay for evaluation calls, the pass
# rate a run needs to pass (0 to 1), and whether approving a version needs a passing evaluation of it.
TOLLGATE_EVALUATION_ENVIRONMENT: str = env.str("TOLLGATE_EVALUATION_ENVIRONMENT", default="development")
if TOLLGATE_EVALUATION_ENVIRONMENT not in ("development", "staging", "production"):
    raise ImproperlyConfigured("TOLLGATE_EVALUATION_ENVIRONMENT is one of development, staging, production.")
TOLLGATE_EVALUATION_MIN_PASS_RATE: float = env.float("TOLLGATE_EVALUATION_MIN_PASS_RATE", default=1.0)
if not 0 <= TOLLGATE_EVALUATION_MIN_PASS_RATE <= 1:
    raise ImproperlyConfigured("TOLLGATE_EVALUATION_MIN_PASS_RATE is a share of cases, from 0 to 1.")
TOLLGATE_APPROVAL_REQUIRES_EVALUATION: bool = env.bool("TOLLGATE_APPROVAL_REQUIRES_EVALUATION", default=False)
# The playground (evaluations.playground): each run is a paid call on the development key, so a person may
# make at most this many a minute (the development key's caps still apply to every one).
TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE: int = env.int("TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE", default=10)
if TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE < 1:
    raise ImproperlyConfigured("TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE is at least 1.")

# GET /metrics: with a token, scrapes must send it as a bearer token; without, only loopback is answered.
TOLLGATE_METRICS_TOKEN: str = secret_optional("TOLLGATE_METRICS_TOKEN")

# How long each process keeps the price book in memory (edits clear the editing process's copy at once).
TOLLGATE_PRICE_CACHE_SECONDS: float = env.float("TOLLGATE_PRICE_CACHE_SECONDS", default=60.0)
# How long each process keeps a token, a release's version or an active key it read (with REDIS_URL only;
# governed changes are seen at once, rows edited behind the application's back within this time; 0: off).
TOLLGATE_HOT_CACHE_SECONDS: float = env.float("TOLLGATE_HOT_CACHE_SECONDS", default=5.0)
# The longest an API token may live: a token is issued with an expiry at most this many days ahead (none
# given: exactly this), and a token issued without an expiry is refused once it is this old.
TOLLGATE_API_TOKEN_MAX_DAYS: int = env.int("TOLLGATE_API_TOKEN_MAX_DAYS", default=365)
# Signed requests (docs/api.md): how far a signature's timestamp may be from now, either way, and how long
# an accepted signature is remembered (in the cache: Redis in production) so that it is accepted once.
TOLLGATE_SIGNATURE_WINDOW_SECONDS: int = env.int("TOLLGATE_SIGNATURE_WINDOW_SECONDS", default=300)
if TOLLGATE_SIGNATURE_WINDOW_SECONDS < 1:
    raise ImproperlyConfigured("TOLLGATE_SIGNATURE_WINDOW_SECONDS must be at least 1.")

TOLLGATE_MAX_REQUEST_BYTES: int = env.int("TOLLGATE_MAX_REQUEST_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = TOLLGATE_MAX_REQUEST_BYTES
# A Slack-compatible incoming webhook ({"text": …}) for budget and monitoring alerts; e-mail goes regardless.
TOLLGATE_ALERT_WEBHOOK_URL: str = env.str("TOLLGATE_ALERT_WEBHOOK_URL", default="")
# Where the demo data's provider keys point (`make run` starts the sandbox there).
TOLLGATE_SANDBOX_URL: str = env.str("TOLLGATE_SANDBOX_URL", default="http://127.0.0.1:8765")
# The only origins a provider key may be sent to (keys/upstreams.py): Anthropic's API, plus the sandbox
# under DEBUG. `scheme://host` allows the default port; `scheme://host:*` any port.
TOLLGATE_UPSTREAM_BASE_URLS: list[str] = env.list(
    "TOLLGATE_UPSTREAM_BASE_URLS", default=["https://api.anthropic.com", *([TOLLGATE_SANDBOX_URL] if DEBUG else [])]
)

# How many reverse proxies in front of Tollgate append to X-Forwarded-For (0: trust REMOTE_ADDR only).
TOLLGATE_TRUSTED_PROXIES: int = env.int("TOLLGATE_TRUSTED_PROXIES", default=0)

ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First, so that its createsuperuser and changepassword (audited, four-eyes aware) replace Django's.
    "identity",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    # Sessions with their holder, address and browser (django-qsessions), so that they can be listed and
    # ended per person (docs/admin.md, Sessions). Replaces django.contrib.sessions.
    "qsessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    # Tollgate, bottom layer first (docs/architecture.md; the order is enforced by import-linter).
    "core",
    "audit",
    "usage",
    "keys",
    "prompts",
    "gateway",
    "evaluations",
    "axes",
    "csp",
    # Two-factor authentication for the admin (identity.mfa): authenticator apps (TOTP) and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
]
# The sandbox (a stand-in for Anthropic's API, `manage.py sandbox`) is a development and test tool: it is
# installed only with DEBUG on (and in the test settings), never in production.
if DEBUG:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "config.middleware.RequestContextMiddleware",
    "config.middleware.ApiRequestGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # django-qsessions' middleware, recording the address config.middleware trusts (TOLLGATE_TRUSTED_PROXIES).
    "identity.session_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Ends a session past its idle timeout or its lifetime (TOLLGATE_SESSION_*), with a message: before
    # the two-factor gate, so that an expired session is ended rather than asked to verify.
    "identity.session_middleware.SessionLimitsMiddleware",
    # Which device verified the session (request.user.is_verified()), then the gate that holds a session
    # that must verify, or enrol, to those pages only (docs/admin.md, Two-factor authentication).
    "django_otp.middleware.OTPMiddleware",
    "identity.middleware.MfaGateMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The admin home page's sections (config.home); config is no app, so its tags are named here.
            "libraries": {"home": "config.home_tags"},
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
VAR_DIR.mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tollgate.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool instead of a connection per thread: with many threads waiting on Anthropic, persistent
    # connections exhaust PostgreSQL's max_connections (docs/contract.md §11). A pool needs CONN_MAX_AGE = 0.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock when their transaction begins, so concurrent writers queue (up to the
    # timeout) instead of failing midway: spend reservations rely on that on the embedded default.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "tollgate"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tollgate"}
    )
}

# --- Celery ---------------------------------------------------------------------------------------------
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# Without a broker, tasks run in-process so the embedded default needs nothing but Python.
TOLLGATE_BROKER_CONFIGURED = bool(CELERY_BROKER_URL)
CELERY_TASK_ALWAYS_EAGER = not TOLLGATE_BROKER_CONFIGURED
CELERY_TASK_EAGER_PROPAGATES = True
if not TOLLGATE_BROKER_CONFIGURED:
    CELERY_BROKER_URL = "memory://"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# On a Redis broker a task taken by a worker that then dies (SIGKILL, lost host) is delivered again only
# after this many seconds (kombu's visibility timeout): how long a killed worker's job waits before another
# worker runs it. It must exceed the job lease, or a job still running under its claim would be delivered
# to a second worker while the first holds it (docs/queue.md, Exactly one result).
CELERY_BROKER_VISIBILITY_TIMEOUT: int = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=60 * 60)
if CELERY_BROKER_VISIBILITY_TIMEOUT <= TOLLGATE_JOB_LEASE_SECONDS:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_VISIBILITY_TIMEOUT ({CELERY_BROKER_VISIBILITY_TIMEOUT} s) must exceed "
        f"TOLLGATE_JOB_LEASE_SECONDS ({TOLLGATE_JOB_LEASE_SECONDS} s): a job still held under its lease would "
        "be delivered to a second worker."
    )
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A message published while the broker restarts waits for it (about 9 s) before the publish fails.
CELERY_TASK_PUBLISH_RETRY_POLICY: dict[str, float] = {
    "max_retries": 6,
    "interval_start": 0.5,
    "interval_step": 0.5,
    "interval_max": 2,
}
# Tasks are idempotent (STYLE.md), so a task whose worker died is safely run again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=14 * 60)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="tollgate")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "worker-heartbeat": {"task": "usage.tasks.worker_heartbeat", "schedule": 60.0},
    "key-rotation-reminders": {"task": "keys.tasks.rotation_reminders", "schedule": crontab(hour=7, minute=0)},
    "sessions-clear": {"task": "identity.tasks.sessions_clear", "schedule": crontab(minute=20)},
    "spend-reservations-reap": {"task": "usage.tasks.reservations_reap", "schedule": 300.0},
    "ledger-partitions": {"task": "usage.tasks.ledger_partitions_create", "schedule": crontab(hour=3, minute=10)},
    "request-log-purge": {"task": "prompts.tasks.request_bodies_purge", "schedule": crontab(minute=15)},
    "batches-poll": {"task": "prompts.tasks.batches_poll", "schedule": TOLLGATE_BATCH_POLL_SECONDS},
    "redispatch": {
        "task": "gateway.tasks.redispatch",
        "schedule": float(min(60, max(5, TOLLGATE_REDISPATCH_SECONDS // 3))),
    },
    # Five minutes past the hour, so that appends begun before the hour have committed.
    "audit-checkpoints": {"task": "audit.tasks.checkpoints_write", "schedule": crontab(minute=5)},
    "audit-chain-verify": {"task": "audit.tasks.chain_verify", "schedule": crontab(hour=4, minute=10)},
    "monitor-alerts": {"task": "usage.tasks.monitor_alerts_check", "schedule": crontab(minute=2)},
    "sso-inactive-accounts": {"task": "identity.tasks.sso_accounts_deactivate", "schedule": crontab(hour=5, minute=40)},
    "weekly-evaluations": {
        "task": "prompts.tasks.evaluations_weekly",
        "schedule": crontab(day_of_week="mon", hour=6, minute=30),
    },
}

# --- Auth -----------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# identity.backends: the lockout check (django-axes), then Django's (which may re-hash the holder's password),
# then single sign-on (inert unless TOLLGATE_OIDC_ISSUER is set).
AUTHENTICATION_BACKENDS = [
    "identity.backends.LockoutBackend",
    "identity.backends.ModelBackend",
    "identity.backends.OidcBackend",
]

# --- Single sign-on over OpenID Connect (docs/admin.md, Single sign-on) ---------------------------------------
# Off unless the issuer is set. The endpoints come from the issuer's /.well-known/openid-configuration unless
# given here. ID tokens are signed with RS256 and checked against the provider's JWKS.
TOLLGATE_OIDC_ISSUER: str = env.str("TOLLGATE_OIDC_ISSUER", default="").rstrip("/")
TOLLGATE_OIDC_CLIENT_ID: str = env.str("TOLLGATE_OIDC_CLIENT_ID", default="")
TOLLGATE_OIDC_CLIENT_SECRET: str = secret_optional("TOLLGATE_OIDC_CLIENT_SECRET")
TOLLGATE_OIDC_AUTHORIZATION_ENDPOINT: str = env.str("TOLLGATE_OIDC_AUTHORIZATION_ENDPOINT", default="")
TOLLGATE_OIDC_TOKEN_ENDPOINT: str = env.str("TOLLGATE_OIDC_TOKEN_ENDPOINT", default="")
TOLLGATE_OIDC_USERINFO_ENDPOINT: str = env.str("TOLLGATE_OIDC_USERINFO_ENDPOINT", default="")
TOLLGATE_OIDC_JWKS_ENDPOINT: str = env.str("TOLLGATE_OIDC_JWKS_ENDPOINT", default="")
TOLLGATE_OIDC_SCOPES: str = env.str("TOLLGATE_OIDC_SCOPES", default="openid email profile")
# The claim a new account's user name is taken from (the first of these the claims carry).
TOLLGATE_OIDC_USERNAME_CLAIMS: list[str] = env.list(
    "TOLLGATE_OIDC_USERNAME_CLAIMS", default=["preferred_username", "email"]
)
# The claim listing the person's groups at the provider, and which of those groups are which Tollgate role
# (JSON: {"provider group": "Prompt authors", …}; a value may be a list of roles, or "superuser").
TOLLGATE_OIDC_ROLES_CLAIM: str = env.str("TOLLGATE_OIDC_ROLES_CLAIM", default="groups")
TOLLGATE_OIDC_ROLE_MAP: dict[str, Any] = env.json("TOLLGATE_OIDC_ROLE_MAP", default={})
# Accounts signed in through the provider are deactivated after this many days without a sign-in (0: never).
TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS: int = env.int("TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS", default=90)
TOLLGATE_OIDC_TIMEOUT: float = env.float("TOLLGATE_OIDC_TIMEOUT", default=10.0)
if TOLLGATE_OIDC_ISSUER:
    if not (TOLLGATE_OIDC_CLIENT_ID and TOLLGATE_OIDC_CLIENT_SECRET):
        raise ImproperlyConfigured("Single sign-on needs TOLLGATE_OIDC_CLIENT_ID and TOLLGATE_OIDC_CLIENT_SECRET.")
    if not DEBUG and not TOLLGATE_OIDC_ISSUER.startswith("https://"):
        raise ImproperlyConfigured("TOLLGATE_OIDC_ISSUER is an https:// address.")
# Password sign-in: with "off", only the break-glass accounts (user names) sign in with a password.
TOLLGATE_PASSWORD_SIGNIN: bool = env.bool("TOLLGATE_PASSWORD_SIGNIN", default=True)
TOLLGATE_BREAK_GLASS_USERS: list[str] = [
    name.strip() for name in env.list("TOLLGATE_BREAK_GLASS_USERS", default=[]) if name.strip()
]

# --- Two-factor authentication (identity.mfa; docs/admin.md, Two-factor authentication) ------------------
# Who must use a second factor to reach the admin: "superuser" and names of roles (core/roles.py). Anyone
# else may enrol, and once enrolled must verify too. Names are checked at start-up (identity.checks).
TOLLGATE_MFA_REQUIRED_ROLES: list[str] = [
    name.strip()
    for name in env.list("TOLLGATE_MFA_REQUIRED_ROLES", default=["superuser", "Prompt approvers", "Key custodians"])
    if name.strip()
]
# The name authenticator apps show for Tollgate's entry.
TOLLGATE_MFA_ISSUER: str = env.str("TOLLGATE_MFA_ISSUER", default="Tollgate")
# Failed codes make the next attempt wait 1, 2, 4, 8, … seconds (django-otp's throttling, per device).
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
OTP_TOTP_ISSUER = TOLLGATE_MFA_ISSUER

# --- Sign-in lockout (django-axes; docs/admin.md, Sign-in lockout) ------------------------------------------
# After LIMIT failures from one address for one account, or from one address for any accounts, that source
# is refused for the cool-off (further failures restart it). The address is the one config.middleware
# trusts (TOLLGATE_TRUSTED_PROXIES).
TOLLGATE_LOGIN_FAILURE_LIMIT: int = env.int("TOLLGATE_LOGIN_FAILURE_LIMIT", default=5)
TOLLGATE_LOGIN_COOLOFF_MINUTES: int = env.int("TOLLGATE_LOGIN_COOLOFF_MINUTES", default=15)
AXES_FAILURE_LIMIT = TOLLGATE_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=TOLLGATE_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_CLIENT_IP_CALLABLE = "identity.signin.lockout_source"
# A success does not wipe the failures counted against its address: signing in to one's own account
# between guesses at a colleague's would otherwise never reach the limit. Failures expire with the cool-off.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "identity.signin.lockout_response"
AXES_WHITELIST_CALLABLE = "identity.signin.lockout_exempt"
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
# Lockouts are in the audit trail; an administrator lifts one on the host (`manage.py axes_reset_username`).
AXES_ENABLE_ADMIN = False
# No configuration banner at every start-up (failure and lockout warnings are still logged).
AXES_VERBOSE = False

# --- Admin sessions (docs/admin.md, Sessions) --------------------------------------------------------------
# A session ends after IDLE minutes without a request, and at the latest MAX hours after its sign-in, checked
# on the server at every request (identity.session_middleware). These two are the only session lifetimes:
# the cookie lasts as long as the longest a session may (DJANGO_SESSION_COOKIE_AGE is replaced by them).
TOLLGATE_SESSION_IDLE_MINUTES: int = env.int("TOLLGATE_SESSION_IDLE_MINUTES", default=30)
TOLLGATE_SESSION_MAX_HOURS: int = env.int("TOLLGATE_SESSION_MAX_HOURS", default=12)
if TOLLGATE_SESSION_IDLE_MINUTES < 1 or TOLLGATE_SESSION_MAX_HOURS < 1:
    raise ImproperlyConfigured("TOLLGATE_SESSION_IDLE_MINUTES and TOLLGATE_SESSION_MAX_HOURS are at least 1.")
if "DJANGO_SESSION_COOKIE_AGE" in os.environ:
    raise ImproperlyConfigured(
        "DJANGO_SESSION_COOKIE_AGE is replaced by TOLLGATE_SESSION_MAX_HOURS (a session's lifetime) and "
        "TOLLGATE_SESSION_IDLE_MINUTES (its idle timeout): set those instead (docs/configuration.md)."
    )
SESSION_ENGINE = "qsessions.backends.db"
SESSION_COOKIE_AGE = TOLLGATE_SESSION_MAX_HOURS * 60 * 60

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- E-mail ---------------------------------------------------------------------------------------------
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
EMAIL_BACKEND: str = _email["EMAIL_BACKEND"]
EMAIL_HOST: str = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT: int = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER: str = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD: str = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS: bool = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL: bool = bool(_email.get("EMAIL_USE_SSL"))
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="tollgate@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security (check --deploy is clean when DEBUG is false) ---------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    # Tollgate runs behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    # Probes from the load balancer and Prometheus come in over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)

# --- Security headers (docs/admin.md, Security headers) -----------------------------------------------------
# Only our own scripts, styles, images and fonts; an inline <script> or <style> runs only with the
# request's nonce (request.csp_nonce), and style="" attributes not at all.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# No page of Tollgate uses any of these browser features: deny them to every frame.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
}
# The OpenAPI schema and the docs (/api/schema/, /api/docs/): public, or for staff and API clients only.
TOLLGATE_API_DOCS_PUBLIC: bool = env.bool("TOLLGATE_API_DOCS_PUBLIC", default=DEBUG)

# --- REST framework -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["keys.authentication.ApiTokenAuthentication"],
    # Every API view declares the scope it requires (`required_scope`, keys.models.Scope): none, refused.
    "DEFAULT_PERMISSION_CLASSES": ["keys.authentication.ApiClientAccess"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.ProblemAutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate API",
    "DESCRIPTION": (
        "Run approved Claude prompts under governance: keys, spend caps, redaction, ledger, audit. Code written "
        "against the official Anthropic SDK uses the Anthropic-compatible endpoint under `/anthropic/` instead "
        "(`POST /anthropic/v1/messages`, `…/count_tokens`, `GET /anthropic/v1/models`, Message Batches), which "
        "speaks Anthropic's own wire format and is described in the documentation's 'Anthropic-compatible "
        "endpoint' page (docs/anthropic.md)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging: JSON lines carrying the request id ----------------------------------------------------------
LOG_LEVEL: str = env.str("DJANGO_LOG_LEVEL", default="INFO")
LOG_FORMAT: str = env.str("DJANGO_LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "config.logging.RequestContextFilter"},
        "no_request_bodies": {"()": "config.logging.NoRequestBodiesFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["no_request_bodies", "request_context"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own request logger repeats our access line and may include the query string.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "anthropic": {"level": "INFO"},
    },
}

# --- Change history -------------------------------------------------------------------------------------
# Reverting from a history page would bypass the services (four-eyes, audit events): history is read-only.
SIMPLE_HISTORY_REVERT_DISABLED = True
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
