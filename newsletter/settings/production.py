"""Production: same variables, but refuses to start with a weak secret or DEBUG on, and turns
on what Django's deployment checklist (`manage.py check --deploy`) asks for."""

from django.core.checks.security.base import _check_secret_key
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import DEBUG, SECRET_KEY, env

# Django's own rule (security.W009): 50 characters or more, 5 different ones at least, and not
# the "django-insecure-" prefix of generated development keys (the default key has it too).
if not _check_secret_key(SECRET_KEY):
    raise ImproperlyConfigured(
        "Set SECRET_KEY to a long random value (at least 50 characters, not 'django-insecure-...') in production."
    )
if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production.")

# HTTPS only: plain-HTTP requests are redirected and browsers told to stay on HTTPS (sent on
# HTTPS responses only). Behind a TLS proxy set TRUSTED_PROXY_COUNT so Django sees HTTPS; a
# proxy that redirects and sends HSTS itself lets both be turned off (SECURE_SSL_REDIRECT=off,
# SECURE_HSTS_SECONDS=0). On a bare domain whose other subdomains are not all on HTTPS, turn
# off SECURE_HSTS_INCLUDE_SUBDOMAINS and SECURE_HSTS_PRELOAD.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# The scraper fetches https URLs only, redirects included.
SCRAPE_REQUIRE_HTTPS = env.bool("SCRAPE_REQUIRE_HTTPS", default=True)
