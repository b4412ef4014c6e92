"""`make run`'s "open this / emails land here" banner, printed once the site answers, so the
start-up noise of web, worker and beat does not bury it. Then it waits quietly: honcho stops
every process when one of them ends."""

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not $PORT: honcho gives each process its own (web's plus 100 per process).
site = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# Straight to loopback, whatever proxy the environment names.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for _ in range(120):
    try:
        opener.open(f"{site}/", timeout=2).close()
        break
    except urllib.error.HTTPError:  # it answers (whatever it says): the site is up
        break
    except OSError:
        time.sleep(0.5)

print(
    f"""
  ------------------------------------------------------------------
  Sign-up form:   {site}/
  Archive, feeds: {site}/archive/   {site}/feeds/all.atom
  Admin:          {site}/admin/   (create a login: .venv/bin/python manage.py createsuperuser)
  Emails land in: this console and {ROOT}/var/outbox/*.eml
  A first digest: make demo   (in another terminal: sample papers, sent now)
  Stop:           Ctrl+C
  ------------------------------------------------------------------
""",
    flush=True,
)
signal.pause() if hasattr(signal, "pause") else time.sleep(10**9)
