"""What a scraped value may hold, wherever it is used.

The parser applies these rules when it stores a paper, and the renderer applies them again to
what it reads back, so a row stored before a rule existed (or written by hand) obeys them too:
scraped text carries no provider merge syntax, the GitHub link is a repository on github.com,
any other link is a plain https URL.

Merge syntax is what a provider we send through fills in per recipient, in the content it is
given:

    Mailgun    %recipient.KEY% from recipient-variables (Anymail passes merge headers as
               %recipient.h:Name%), and its own %recipient_email%, %unsubscribe_url%, ...
    SendGrid   each personalization's substitution keys: ours are %recipient.KEY% (its docs
               write -KEY-); {{KEY}} in dynamic templates
    Postmark   {{KEY}} (our backend fills them in; Postmark's templates use the same syntax)
    SparkPost, Brevo and other template languages: {{ ... }}

Each provider's backend declares its syntax (newsletter/email_providers, `merge_syntaxes`);
the patterns here are drawn from all of them.

Neither Mailgun's nor SendGrid's documentation says whether a key's case matters, so nothing
here depends on it.
"""

import re
import unicodedata
from collections import Counter
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from newsletter.digests.links import MERGE_FIELDS
from newsletter.email_providers import registry

ZERO_WIDTH_SPACE = "\u200b"
# Every registered provider's merge syntax (email_providers/*.py: merge_syntaxes). Tags made
# of our own keys alone (SendGrid's -KEY-) are looked for with the keys that hold a "_" only:
# "-date-" is ordinary text, as in "up-to-date-", and would only fill in the date.
_SYNTAXES = registry.merge_syntaxes(tuple(name for name in MERGE_FIELDS if "_" in name))
# Where a tag can begin: "%" before a name, the first "{" of "{{", the "-" of "-<our field>-".
_TAG_START = re.compile("|".join(syntax.opener for syntax in _SYNTAXES), re.IGNORECASE)
# Every tag a provider could read, overlapping ones included ("%a%b%" holds %a% and %b%).
_TAG = re.compile("(?=(" + "|".join(syntax.tag for syntax in _SYNTAXES) + "))", re.IGNORECASE)


def strip_merge_syntax(text: str) -> str:
    """`text` with every provider merge tag made inert: a zero-width space after the character
    that opens it. Readers see the same text; no provider finds a tag in it."""
    return _TAG_START.sub(lambda m: m.group(0) + ZERO_WIDTH_SPACE, text)


def merge_tags(text: str) -> Counter:
    """The merge tags a provider could find in `text`, lower-cased, each with its count."""
    if not _TAG_START.search(text):  # every tag begins with an opener: the quick common answer
        return Counter()
    return Counter(match.group(1).lower() for match in _TAG.finditer(text))


# --- links --------------------------------------------------------------------------------

_validate_https_url = URLValidator(schemes=["https"])
_GITHUB_HOSTS = {"github.com", "www.github.com"}
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def github_repo_url(value) -> str:
    """https://github.com/<owner>/<repo> if `value` links to a repository on GitHub (http,
    "www.", ".git", a trailing slash or a deeper path are normalised away), else ""."""
    parts = _plain_url(value, ("http", "https"))
    if parts is None or parts.hostname not in _GITHUB_HOSTS or parts.port is not None:
        return ""
    segments = parts.path.split("/")  # "", owner, repo, ...
    if len(segments) < 3:
        return ""
    owner, repo = segments[1], segments[2].removesuffix(".git")
    if not _GITHUB_OWNER.match(owner) or not _GITHUB_REPO.match(repo) or repo in (".", ".."):
        return ""
    return f"https://github.com/{owner}/{repo}"


def https_url(value) -> str:
    """`value` (trimmed) if it is a plain https URL, else ""."""
    if _plain_url(value, ("https",)) is None:
        return ""
    try:
        _validate_https_url(value.strip())
    except ValidationError:
        return ""
    return value.strip()


def _plain_url(value, schemes):
    """The parts of `value` if it is a URL of one of `schemes` with a host and no user name,
    password, white space, control character or merge syntax; else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or strip_merge_syntax(value) != value:
        return None
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        return None
    if parts.scheme.lower() not in schemes or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    return parts
