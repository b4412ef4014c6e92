"""Celery tasks of the newsletter app, one module per job (found by autodiscover)."""
from .scrape import scrape_papers  # noqa: F401
from .topics import rescore_topic  # noqa: F401
from .digests import dispatch_digests, send_digest_chunk  # noqa: F401
