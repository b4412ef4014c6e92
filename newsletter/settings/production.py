"""Production: same variables, but refuses to start with a weak secret or DEBUG on, and turns
on what Django's deployment checklist (`manage.py check --deploy`) asks for."""

from django.core.checks.security.base import _check_secret_key
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import DEBUG, DEFAULT_FROM_EMAIL, PLACEHOLDER_POSTAL_ADDRESS, SECRET_KEY, SENDER_POSTAL_ADDRESS, SERVER_EMAIL, env

# Django's own rule (security.W009): 50 characters or more, 5 different ones at least, and not
# the "django-insecure-" prefix of generated development keys (the default key has it too).
if not _check_secret_key(SECRET_KEY):
    raise ImproperlyConfigured(
        "Set SECRET_KEY to a long random value (at least 50 characters, not 'django-insecure-...') in production."
    )
if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production.")


def _sender_domain(address: str) -> str:
    from email.utils import parseaddr

    return parseaddr(address)[1].rpartition("@")[2].strip().rstrip(".").lower()


# Mail from a placeholder: receivers reject a sender domain that does not exist, and the law
# (CAN-SPAM, ePrivacy) wants the sender's real postal address in every digest.
for _name, _address in (("DEFAULT_FROM_EMAIL", DEFAULT_FROM_EMAIL), ("SERVER_EMAIL", SERVER_EMAIL)):
    _domain = _sender_domain(_address)
    if not _domain or "." not in _domain or _domain == "localhost" or _domain.endswith((".localhost", ".local", ".invalid", ".example", ".test")):
        raise ImproperlyConfigured(
            f"Set {_name} to an address at your own domain (it is {_address!r}); the receivers of a localhost sender reject it."
        )
if " ".join(SENDER_POSTAL_ADDRESS.split()) in ("", PLACEHOLDER_POSTAL_ADDRESS):
    raise ImproperlyConfigured(
        "Set SENDER_POSTAL_ADDRESS to the postal address of whoever sends the digest (shown in every email, as the law asks)."
    )

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
