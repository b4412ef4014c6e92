"""Settings of the processes chaos scripts and benches start (gunicorn, Celery workers):
production settings, plus the internal tuning knobs (newsletter/app_settings.py) their
environment sets, so a run can shorten time-outs and backoffs. The product reads those
knobs from settings only, never from the environment (settings/test.py does the same for the
tests' own workers)."""

import os

from newsletter.app_settings import from_environ

# Production refuses the development placeholders (settings/production.py): these processes
# send to fakes and sinks on loopback, from a sender that looks real.
os.environ.setdefault("DEFAULT_FROM_EMAIL", "Trending Papers <papers@news.example.org>")
os.environ.setdefault("SERVER_EMAIL", "ops@news.example.org")
os.environ.setdefault("SENDER_POSTAL_ADDRESS", "Trending Papers Digest, 4 Test Lane, 12345 Loopback")

from newsletter.settings.production import *  # noqa: E402,F401,F403

globals().update(from_environ())
