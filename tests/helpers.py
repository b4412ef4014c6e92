"""Small helpers for tests: read links out of received emails, make subscribers. They live in
the shared support package (chaos and bench use them too); tests import them from here."""

from .support.links import (  # noqa: F401
    LINK_RE, PERSONAL_LINK_RE, email_text, links_in, path_of, personal_links, preferences_path, unsubscribe_path,
    working_tokens_in,
)
from .support.seeding import make_subscriber, sent_digest  # noqa: F401
