"""Email providers.

This module maps EMAIL_PROVIDER to a Django email backend and gathers each ESP's usual
environment variables into Anymail's ANYMAIL setting, so switching provider is a matter of
settings (the settings import it: it imports nothing else). What digest sending needs to know
about a provider lives on its backend class: `base.DigestBackend`, one small module per batch
provider (`mailgun`, `sendgrid`, `postmark`), found through `registry`. ADDING_A_PROVIDER.md
walks through adding one.
"""

import os

# Anymail ESPs and the backend module that serves each (see anymail.backends.*).
ANYMAIL_ESPS = {
    "amazon_ses": "amazon_ses",
    "brevo": "brevo",
    "mailersend": "mailersend",
    "mailgun": "mailgun",
    "mailjet": "mailjet",
    "mailtrap": "mailtrap",
    "mandrill": "mandrill",
    "postal": "postal",
    "postmark": "postmark",
    "resend": "resend",
    "scaleway": "scaleway",
    "sendgrid": "sendgrid",
    "sparkpost": "sparkpost",
    "unisender_go": "unisender_go",
}

BUILTIN_BACKENDS = {
    "console": "newsletter.mail_backends.OutboxEmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}


def email_backend_for(provider: str) -> str:
    provider = provider.strip().lower()
    if provider in BUILTIN_BACKENDS:
        return BUILTIN_BACKENDS[provider]
    if provider in ANYMAIL_ESPS:
        return f"anymail.backends.{ANYMAIL_ESPS[provider]}.EmailBackend"
    if "." in provider:  # a dotted path to any other backend
        return provider
    known = ", ".join(sorted([*BUILTIN_BACKENDS, *ANYMAIL_ESPS]))
    raise ValueError(f"Unknown EMAIL_PROVIDER {provider!r}; use one of: {known}")


def anymail_settings_from_env(env, environ=os.environ) -> dict:
    """ANYMAIL = every <ESP>_* variable (e.g. MAILGUN_API_KEY, MAILGUN_API_URL) plus every
    ANYMAIL_* variable with the prefix removed (e.g. ANYMAIL_WEBHOOK_SECRET)."""
    settings = {}
    prefixes = tuple(f"{esp.upper()}_" for esp in ANYMAIL_ESPS)
    for name, value in environ.items():
        if name.startswith(prefixes):
            settings[name] = value
        elif name.startswith("ANYMAIL_"):
            settings[name.removeprefix("ANYMAIL_")] = value
    # boto3 client parameters for Amazon SES (endpoint override for tests and staging).
    if "AMAZON_SES_ENDPOINT_URL" in environ:
        settings["AMAZON_SES_CLIENT_PARAMS"] = {
            "endpoint_url": environ["AMAZON_SES_ENDPOINT_URL"],
            "region_name": environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        }
    return settings
