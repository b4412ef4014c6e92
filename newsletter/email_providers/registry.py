"""The digest backends, keyed by EMAIL_PROVIDER.

Each entry is a batch provider's backend (a base.DigestBackend over Anymail's backend for that
ESP). Digests go through it instead of the configured backend for the same provider, with the
same settings; any other backend sends digests itself, one message per recipient. Adding a
provider is one module beside this one and one line here (ADDING_A_PROVIDER.md).
"""

import re
from functools import cache

from django.utils.module_loading import import_string

from .base import OUR_FIELDS, DigestBackend, MergeSyntax

PROVIDERS = {
    "mailgun": "newsletter.email_providers.mailgun.EmailBackend",
    "postmark": "newsletter.email_providers.postmark.EmailBackend",
    "sendgrid": "newsletter.email_providers.sendgrid.EmailBackend",
}


@cache
def backend_class(provider: str) -> type[DigestBackend]:
    """The digest backend of `provider` (an EMAIL_PROVIDER value); the defaults for any other."""
    path = PROVIDERS.get(provider.strip().lower())
    return import_string(path) if path else DigestBackend


def digest_backend(configured: str) -> str:
    """The backend (dotted path) that sends digests when EMAIL_BACKEND is `configured`:
    ours for Anymail's backend of a registered provider, else `configured` itself."""
    for provider, path in PROVIDERS.items():
        if configured in (path, f"anymail.backends.{provider}.EmailBackend"):
            return path
    return configured


def capabilities(connection) -> DigestBackend:
    """What `connection` (an open email backend) can do for digests."""
    return connection if isinstance(connection, DigestBackend) else DigestBackend()


def merge_syntaxes(our_fields: tuple[str, ...]) -> list[MergeSyntax]:
    """Every registered provider's merge tags, each once, with OUR_FIELDS replaced by a regex
    of `our_fields` (the merge field names of our templates)."""
    names = "|".join(re.escape(name) for name in our_fields)
    found = []
    for provider in PROVIDERS:
        for syntax in backend_class(provider).merge_syntaxes:
            syntax = MergeSyntax(*(part.replace(OUR_FIELDS, names) for part in syntax))
            if syntax not in found:
                found.append(syntax)
    return found
