"""Operator settings vs internal tuning: the environment variables the settings read are the
documented ones (README, .env.example); the tuning knobs of newsletter/app_settings.py have
defaults there, can be overridden in settings, and are never read from the environment by the
product's own settings modules."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from newsletter.app_settings import AppSettings, app_settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "newsletter" / "settings"
KNOBS = set(AppSettings.knobs()) | {"SCRAPE_USER_AGENT"}


def env_variables_read(path: Path) -> set[str]:
    """Names passed to env(...), env.int(...), env.bool(...) and friends in a settings module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env"
        ):
            names.add(node.args[0].value)
    return names


def product_settings_modules():
    return [SETTINGS / f"{name}.py" for name in ("base", "development", "production")]


def test_every_environment_variable_is_documented_and_none_is_a_tuning_knob():
    read = set().union(*(env_variables_read(path) for path in product_settings_modules()))
    assert {"SECRET_KEY", "SCRAPE_SOURCE_URL", "DIGEST_BATCH_SIZE"} <= read  # the files were read
    documented = (ROOT / "README.md").read_text() + (ROOT / ".env.example").read_text()
    assert sorted(name for name in read if name not in documented) == []
    assert sorted(read & KNOBS) == []
    assert sorted(name for name in KNOBS if re.search(rf"^#? ?{name}=", (ROOT / ".env.example").read_text(), re.M)) == []


def test_one_topic_threshold():
    everything = "".join(path.read_text() for path in [*product_settings_modules(), ROOT / ".env.example"])
    assert "TOPIC_MIN_SCORE" not in everything and "DIGEST_MIN_TOPIC_SCORE" not in everything


def test_knobs_have_defaults_and_settings_override_them(settings):
    assert app_settings.DIGEST_RETRY_BACKOFF_MAX == AppSettings.DIGEST_RETRY_BACKOFF_MAX.default == 600.0
    settings.DIGEST_RETRY_BACKOFF_MAX = 12.5
    assert app_settings.DIGEST_RETRY_BACKOFF_MAX == 12.5
    settings.SCRAPE_CONTACT_URL = "https://ops.example.org/contact"
    assert app_settings.SCRAPE_USER_AGENT == "TrendingPapersDigest/1.0 (+https://ops.example.org/contact)"


def knobs_seen_by(settings_module: str, environ: dict) -> dict:
    env = {**os.environ, **environ, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONPATH": str(ROOT)}
    code = (
        "import django, json; django.setup(); from newsletter.app_settings import app_settings as a; "
        "print(json.dumps([a.DIGEST_RETRY_BACKOFF, a.SCRAPE_RETRIES, a.SCRAPE_OBEY_ROBOTS]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_environment_tunes_test_processes_only():
    environ = {"DIGEST_RETRY_BACKOFF": "0.25", "SCRAPE_RETRIES": "1", "SCRAPE_OBEY_ROBOTS": "off"}
    assert knobs_seen_by("newsletter.settings.development", environ) == [5.0, 4, True]
    assert knobs_seen_by("newsletter.settings.test", environ) == [0.25, 1, False]
