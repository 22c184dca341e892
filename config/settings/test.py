"""Settings for the test suite: production settings (DEBUG off) with throwaway secrets and fast hashing.

DATABASE_URL and REDIS_URL are honoured, so the same suite runs on the embedded default and on
PostgreSQL + Redis.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if os.environ.get("TOLLGATE_TEST_WORKER") == "1":
    os.environ.setdefault("TOLLGATE_PRICE_CACHE_SECONDS", "0")

# Test-only secrets, set before the production settings read them. Never valid anywhere else.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("TOLLGATE_ENCRYPTION_KEYS", "test:" + "dGVzdC1vbmx5LWtleS1lbmNyeXB0aW9uLTMyLWJ5dGU=")
os.environ.setdefault("TOLLGATE_AUDIT_SIGNING_KEY", "dGVzdC1vbmx5LWF1ZGl0LXNpZ25pbmcta2V5LTMyYnk=")
os.environ.setdefault("TOLLGATE_PSEUDONYM_KEY", "test-only-pseudonym-key-" + "y" * 40)
os.environ["DJANGO_DEBUG"] = "false"
# Checkpoint anchors of the test run go to a directory of its own (audit tests use one per test), which
# a Celery worker started by the tests inherits through the environment.
if not os.environ.get("TOLLGATE_AUDIT_ANCHOR_DIR"):
    os.environ["TOLLGATE_AUDIT_ANCHOR_DIR"] = tempfile.mkdtemp(prefix="tollgate-test-anchors-")
    atexit.register(shutil.rmtree, os.environ["TOLLGATE_AUDIT_ANCHOR_DIR"], ignore_errors=True)
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")

from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES, INSTALLED_APPS, LOGGING

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the apps (no collectstatic in tests).
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Keep test keys apart from a development server sharing the same Redis.
CACHES["default"]["KEY_PREFIX"] = "tollgate-test"
# Tasks run in-process unless a test starts a real worker (tests/conftest.py, `celery_worker`); the
# worker then takes them from a queue of its own, and queues the tasks it starts. Transactional tests
# re-seed the price book with new ids, so the worker keeps no price in memory.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("TOLLGATE_TEST_WORKER") != "1"
CELERY_TASK_DEFAULT_QUEUE = "tollgate-test"
LOGGING["root"]["level"] = "WARNING"
# Test receivers of webhooks listen on 127.0.0.1; retries come quickly.
TOLLGATE_WEBHOOK_ALLOW_LOOPBACK = True
TOLLGATE_WEBHOOK_BACKOFF_SECONDS = 0.2
# The sandbox listens on a free loopback port of each test session.
INSTALLED_APPS = [*INSTALLED_APPS, "sandbox"]
TOLLGATE_UPSTREAM_BASE_URLS = ["https://api.anthropic.com", "http://127.0.0.1:*"]
