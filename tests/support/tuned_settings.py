"""Settings of the processes chaos scripts and benches start (gunicorn, Celery workers):
production settings, plus the internal tuning knobs (newsletter/app_settings.py) their
environment sets, so a run can shorten time-outs and backoffs. The product reads those
knobs from settings only, never from the environment (settings/test.py does the same for the
tests' own workers)."""

from newsletter.app_settings import from_environ
from newsletter.settings.production import *  # noqa: F401,F403

globals().update(from_environ())
