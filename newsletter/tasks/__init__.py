"""Celery tasks of the newsletter app, one module per job (found by autodiscover)."""
from .scrape import scrape_papers  # noqa: F401
from .topics import retrain_topic_model  # noqa: F401
from .digests import dispatch_digests, send_digest_chunk  # noqa: F401
from .health import check_deliverability  # noqa: F401
from .dashboard import refresh_dashboard  # noqa: F401
from .personal import retrain_readers  # noqa: F401
