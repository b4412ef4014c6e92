"""The production stack as files: docker-compose.yml, Dockerfile, .dockerignore and
.env.example, checked by parsing them (no Docker engine is needed), and the production
settings' refusal to start with the development secret key or DEBUG on."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = {"web", "worker", "beat"}
SERVICES = APP_SERVICES | {"postgres", "redis", "mailpit"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command_of(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def env_example_names() -> set[str]:
    """Variables .env.example sets or shows commented out (`NAME=` or `# NAME=`)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_compose_has_the_six_services_on_the_right_images(services):
    assert set(services) == SERVICES
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["environment"]["DJANGO_SETTINGS_MODULE"] == "newsletter.settings.production"


def test_every_service_has_a_health_check(services):
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert not check.get("disable"), name
        assert "interval" in check and "retries" in check, name


def test_dependencies_wait_for_healthy_services(services):
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    assert set(services["web"]["depends_on"]) == {"postgres", "redis"}
    # Worker and beat start after web, which runs the migrations.
    assert {"web", "redis", "mailpit"} <= set(services["worker"]["depends_on"])
    assert {"web", "redis"} <= set(services["beat"]["depends_on"])


def test_web_migrates_collects_static_and_serves_with_gunicorn(services):
    command = command_of(services["web"])
    migrate, collect, serve = (command.index(part) for part in ("manage.py migrate", "manage.py collectstatic", "gunicorn newsletter.wsgi"))
    assert migrate < collect < serve
    assert "--noinput" in command and "0.0.0.0:8000" in command
    assert "8000:8000" in services["web"]["ports"]
    assert "http://127.0.0.1:8000/" in " ".join(services["web"]["healthcheck"]["test"])


def test_worker_and_exactly_one_beat(services):
    worker, beat = command_of(services["worker"]), command_of(services["beat"])
    assert worker.startswith("celery -A newsletter worker")
    assert beat.startswith("celery -A newsletter beat")
    # A worker with an embedded beat would be a second scheduler.
    assert not re.search(r"(^|\s)(-B|--beat)(\s|$)", worker)
    running_beat = [name for name, service in services.items() if re.search(r"\bbeat\b", command_of(service))]
    assert running_beat == ["beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    # A fixed container name makes `docker compose up --scale beat=2` fail instead of doubling every task.
    assert services["beat"]["container_name"]
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])


def test_mail_goes_to_mailpit_by_default(services):
    environment = services["worker"]["environment"]
    assert environment["EMAIL_PROVIDER"] == "${EMAIL_PROVIDER:-smtp}"
    assert environment["EMAIL_HOST"] == "${EMAIL_HOST:-mailpit}"
    assert environment["EMAIL_PORT"] == "${EMAIL_PORT:-1025}"
    assert any(str(port).endswith("8025:8025") for port in services["mailpit"]["ports"])
    assert services["mailpit"]["healthcheck"]["test"] == ["CMD", "/mailpit", "readyz"]


def test_compose_refuses_to_start_without_a_secret_key(services):
    for name in APP_SERVICES:
        assert services[name]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_env_example_documents_every_variable(compose):
    documented = env_example_names()
    required = {
        "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "SITE_URL", "DATABASE_URL", "REDIS_URL", "DEFAULT_FROM_EMAIL",
        "EMAIL_PROVIDER", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS",
        "MAILGUN_API_KEY", "MAILGUN_SENDER_DOMAIN", "MAILGUN_API_URL", "ANYMAIL_WEBHOOK_SECRET", "ADMINS",
        "SIGNUP_RATE_LIMIT", "RATELIMIT_IP_META_KEY", "CONFIRMATION_LINK_MAX_AGE",
    }
    assert required <= documented, f"missing from .env.example: {sorted(required - documented)}"
    # Every variable the compose file reads is explained there too.
    used_by_compose = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    used_by_compose.discard("COMPOSE_PROJECT_NAME")  # Docker Compose's own
    assert used_by_compose <= documented, f"missing from .env.example: {sorted(used_by_compose - documented)}"
    # The only value set is the empty SECRET_KEY, so a copied file never ships a real secret.
    assert re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), flags=re.MULTILINE) == [("SECRET_KEY", "")]


def test_dockerfile_and_dockerignore():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", dockerfile, flags=re.MULTILINE)
    assert "pip install -r requirements.txt" in dockerfile
    assert "DJANGO_SETTINGS_MODULE=newsletter.settings.production" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.MULTILINE), "the app must not run as root"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "var/", "tests/artifacts/"} <= ignored


def run_production_settings(tmp_path, code: str, **variables) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env.update(
        DJANGO_SETTINGS_MODULE="newsletter.settings.production",
        VAR_DIR=str(tmp_path),
        PYTHONPATH=str(ROOT),
        DEBUG="off",  # explicit, so that a developer's .env cannot change the outcome
    )
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


SETUP = "import django; django.setup(); from django.conf import settings; print('DEBUG', settings.DEBUG)"
GOOD_KEY = secrets.token_urlsafe(50)


def test_production_refuses_the_development_secret_key(tmp_path):
    from newsletter.settings.base import INSECURE_DEFAULT_SECRET_KEY

    for key in (INSECURE_DEFAULT_SECRET_KEY, "short-key", ""):
        result = run_production_settings(tmp_path, SETUP, SECRET_KEY=key)
        assert result.returncode != 0, key
        assert "django.core.exceptions.ImproperlyConfigured: Set SECRET_KEY to a long random value" in result.stderr


def test_production_refuses_debug_on(tmp_path):
    result = run_production_settings(tmp_path, SETUP, SECRET_KEY=GOOD_KEY, DEBUG="on")
    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: DEBUG must be off in production." in result.stderr


def test_production_starts_with_a_good_key(tmp_path):
    result = run_production_settings(tmp_path, SETUP + "; import newsletter.wsgi", SECRET_KEY=GOOD_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG False"
    # Django's own deployment checklist finds no error (warnings such as HSTS are the proxy's job).
    check = run_production_settings(
        tmp_path, "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'ERROR'])",
        SECRET_KEY=GOOD_KEY,
    )
    assert check.returncode == 0, check.stderr
