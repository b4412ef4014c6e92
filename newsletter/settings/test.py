"""Tests: real PostgreSQL and real Redis on loopback (overridable with the same variables)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsletter")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

from .base import *  # noqa: E402,F401,F403
from .base import env  # noqa: E402

DEBUG = False
SECRET_KEY = "test-secret-key-that-is-long-enough-for-hmac-0123456789"
SITE_URL = "http://testserver"
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = env("TEST_EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
SIGNUP_RATE_LIMIT = env("SIGNUP_RATE_LIMIT", default="1000/m")

# Worker processes started by tests get short time-outs and backoffs from their environment
# (the product never reads these knobs from there: newsletter/app_settings.py).
from newsletter.app_settings import from_environ  # noqa: E402

globals().update(from_environ())
