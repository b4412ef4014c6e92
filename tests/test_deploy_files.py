"""The production stack as files: docker-compose.yml, Dockerfile, .dockerignore and
.env.example, checked by parsing them (no Docker engine is needed); the production settings'
refusal to start with a weak secret key or DEBUG on, and Django's deployment checklist; the
Dockerfile's gunicorn command run for real, to show what its logs keep of a reader's links."""

import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
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
    assert published_host_ports(services["web"]) == [("127.0.0.1", "8000")]
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
        "SIGNUP_RATE_LIMIT", "TRUSTED_PROXY_COUNT", "CONFIRMATION_LINK_MAX_AGE", "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "WEB_BIND", "WEB_PORT",
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
        DEFAULT_FROM_EMAIL="Trending Papers <papers@news.example.org>",
        SERVER_EMAIL="ops@news.example.org",
        SENDER_POSTAL_ADDRESS="Papers Club, 12 Rue des Lilas, 75011 Paris, France",
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


def test_production_refuses_a_placeholder_sender_or_postal_address(tmp_path):
    from newsletter.settings.base import PLACEHOLDER_POSTAL_ADDRESS

    for sender in ("Trending Papers <papers@localhost>", "papers@localhost", "a@mail.localhost", "a@host", "nobody"):
        result = run_production_settings(tmp_path, SETUP, SECRET_KEY=GOOD_KEY, DEFAULT_FROM_EMAIL=sender, SERVER_EMAIL=sender)
        assert result.returncode != 0, sender
        assert "ImproperlyConfigured: Set DEFAULT_FROM_EMAIL to an address at your own domain" in result.stderr, sender
    result = run_production_settings(tmp_path, SETUP, SECRET_KEY=GOOD_KEY, SERVER_EMAIL="root@localhost")
    assert result.returncode != 0 and "Set SERVER_EMAIL to an address at your own domain" in result.stderr
    for address in (PLACEHOLDER_POSTAL_ADDRESS, "  ", PLACEHOLDER_POSTAL_ADDRESS.replace(" ", "  ")):
        result = run_production_settings(tmp_path, SETUP, SECRET_KEY=GOOD_KEY, SENDER_POSTAL_ADDRESS=address)
        assert result.returncode != 0, address
        assert "ImproperlyConfigured: Set SENDER_POSTAL_ADDRESS to the postal address" in result.stderr, address


def test_production_refuses_debug_on(tmp_path):
    result = run_production_settings(tmp_path, SETUP, SECRET_KEY=GOOD_KEY, DEBUG="on")
    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: DEBUG must be off in production." in result.stderr


def test_production_starts_with_a_good_key(tmp_path):
    result = run_production_settings(tmp_path, SETUP + "; import newsletter.wsgi", SECRET_KEY=GOOD_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG False"
    # Django's own deployment checklist finds no error (nor warning: see test_check_deploy_is_clean...).
    check = run_production_settings(
        tmp_path, "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'ERROR'])",
        SECRET_KEY=GOOD_KEY,
    )
    assert check.returncode == 0, check.stderr


def test_production_refuses_keys_that_djangos_own_check_flags(tmp_path):
    """The same rule as `check --deploy` (security.W009): 50 characters or more, at least 5
    different ones, and not Django's generated development prefix."""
    for key in (secrets.token_urlsafe(30), "ab" * 40, "django-insecure-" + secrets.token_urlsafe(50)):
        result = run_production_settings(tmp_path, SETUP, SECRET_KEY=key)
        assert result.returncode != 0, key
        assert "ImproperlyConfigured: Set SECRET_KEY to a long random value" in result.stderr, key


def test_check_deploy_is_clean_with_a_proper_key(tmp_path):
    """No warning at all from Django's deployment checklist (HSTS, SSL redirect, key, cookies)."""
    check = run_production_settings(
        tmp_path, "from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        SECRET_KEY=GOOD_KEY,
    )
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout


# Asks for /nope/ as the proxy would after terminating TLS; prints (status, Location, HSTS).
PROXIED_HTTPS_REQUEST = (
    "import django; django.setup(); from django.test import Client; "
    "r = Client(HTTP_HOST='localhost').get('/nope/', headers={'X-Forwarded-Proto': 'https'}); "
    "print(r.status_code, r.headers.get('Location'), r.headers.get('Strict-Transport-Security'))"
)


def test_x_forwarded_proto_is_trusted_only_behind_a_proxy(tmp_path):
    # Exposed directly: the header is the client's word, the request is plain HTTP: redirected.
    direct = run_production_settings(tmp_path, PROXIED_HTTPS_REQUEST, SECRET_KEY=GOOD_KEY)
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.split() == ["301", "https://localhost/nope/", "None"]
    # Behind one proxy (which overwrites the header): HTTPS, so no redirect, and HSTS is sent.
    proxied = run_production_settings(tmp_path, PROXIED_HTTPS_REQUEST, SECRET_KEY=GOOD_KEY, TRUSTED_PROXY_COUNT="1")
    assert proxied.returncode == 0, proxied.stderr
    status, location, hsts = proxied.stdout.split(maxsplit=2)
    assert (status, location) == ("404", "None")
    assert hsts.startswith("max-age=31536000")
    # Both can be turned off for a proxy that redirects and sends HSTS itself.
    relaxed = run_production_settings(tmp_path, PROXIED_HTTPS_REQUEST, SECRET_KEY=GOOD_KEY,
                                      SECURE_SSL_REDIRECT="off", SECURE_HSTS_SECONDS="0")
    assert relaxed.stdout.split() == ["404", "None", "None"]


def test_the_old_forwarded_for_setting_is_refused(tmp_path):
    """RATELIMIT_IP_META_KEY=HTTP_X_FORWARDED_FOR answered 500 to `a, b` or no header and let a
    client choose its rate-limit address; TRUSTED_PROXY_COUNT replaces it."""
    result = run_production_settings(tmp_path, SETUP, SECRET_KEY=GOOD_KEY, RATELIMIT_IP_META_KEY="HTTP_X_FORWARDED_FOR")
    assert result.returncode != 0
    assert "ImproperlyConfigured: RATELIMIT_IP_META_KEY is replaced by TRUSTED_PROXY_COUNT" in result.stderr


def published_host_ports(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, with ${VAR:-default} resolved to its default."""
    published = []
    for spec in service.get("ports", []):
        spec = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(spec))
        parts = spec.rsplit(":", 2)
        published.append((parts[0], parts[1]) if len(parts) == 3 else ("0.0.0.0", parts[0]))
    return published


def test_compose_publishes_only_the_web_port_and_mailpit_ui_on_loopback(services):
    """Nothing answers on the host's public interfaces by default: the reverse proxy (or the
    browser on the same machine) reaches gunicorn on 127.0.0.1:8000."""
    assert {name for name, service in services.items() if service.get("ports")} == {"web", "mailpit"}
    assert published_host_ports(services["web"]) == [("127.0.0.1", "8000")]
    assert published_host_ports(services["mailpit"]) == [("127.0.0.1", "8025")]
    for name, service in services.items():
        assert "network_mode" not in service, name  # host networking would publish every port


def gunicorn_options(command: str) -> list[str]:
    """gunicorn's options in a deploy file's command, e.g. ['--config', 'gunicorn.conf.py', ...]."""
    tail = re.search(r"exec gunicorn (.+?)(?:\"\]|$)", command, flags=re.MULTILINE).group(1)
    return [arg for arg in shlex.split(tail) if arg != "newsletter.wsgi"]


def without_options(options: list[str], *names: str) -> list[str]:
    kept, skip = [], False
    for arg in options:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{name}=" for name in names)):
            kept.append(arg)
    return kept


def test_deploy_files_start_gunicorn_with_the_redacting_config(services):
    dockerfile = (ROOT / "Dockerfile").read_text()
    for where, command in (("Dockerfile", dockerfile), ("docker-compose.yml", command_of(services["web"]))):
        options = gunicorn_options(command)
        assert "--config gunicorn.conf.py" in " ".join(options), where
        assert "--access-logfile -" in " ".join(options), where


@pytest.mark.django_db(transaction=True)
def test_gunicorn_access_and_error_logs_redact_every_token(tmp_path, topics):
    """The Dockerfile's own gunicorn command, on loopback, logging to files: a reader's working
    links (and the Referer that repeats them) never reach the logs; the routes still do."""
    from urllib.parse import quote

    import requests
    from django.urls import reverse

    from .support.net import free_port
    from .support.processes import PYTHON, start, stop
    from subscriptions import tokens

    from .conftest import worker_env
    from .helpers import make_subscriber

    reader = make_subscriber("logged@example.org", topics=[topics["agents"]])
    links = {
        "preferences": reverse("subscriptions:preferences", args=[tokens.make_token(reader, tokens.PREFERENCES)]),
        "unsubscribe": reverse("subscriptions:unsubscribe", args=[tokens.make_token(reader, tokens.UNSUBSCRIBE)]),
        "confirm": reverse("subscriptions:confirm", args=[tokens.make_token(reader, tokens.CONFIRM, {"signup": 1})]),
        "digest": reverse("view_digest", args=[tokens.make_token(reader, tokens.VIEW_DIGEST, {"d": 1})]),
    }
    secrets_in_links = [path.rstrip("/").rsplit("/", 1)[1].split(".", 1)[1] for path in links.values()]
    assert all(len(secret) > 40 for secret in secrets_in_links)

    port, access_log = free_port(), tmp_path / "access.log"
    options = without_options(gunicorn_options((ROOT / "Dockerfile").read_text()), "--bind", "-b", "--access-logfile")
    # The error log stays on stderr, as in the image: start() collects it in a file.
    server = start("gunicorn-redaction", [PYTHON, "-m", "gunicorn", "newsletter.wsgi", *options, f"--bind=127.0.0.1:{port}",
                                          f"--access-logfile={access_log}"], worker_env(), ready="Booting worker", log_dir=tmp_path)
    error_log = server.log_path
    origin = f"http://127.0.0.1:{port}"
    try:
        statuses = {}
        for name, path in links.items():
            statuses[name] = requests.get(origin + path, headers={"Referer": origin + path}, timeout=10).status_code
        # A mail client that percent-encodes the colons still reaches the page.
        encoded = links["preferences"].replace(":", "%3A")
        statuses["preferences, encoded"] = requests.get(origin + encoded, timeout=10).status_code
        # A client that sends the link unencoded breaks the request line, which the error log quotes.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(f"GET {links['unsubscribe']}\u00e9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
        deadline = time.monotonic() + 10
        while len(access_log.read_text().splitlines()) < len(statuses) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop(server)
    # The preferences and unsubscribe links work (the other two are well signed but lead nowhere).
    assert [statuses[name] for name in ("preferences", "unsubscribe", "preferences, encoded")] == [200, 200, 200]
    assert max(statuses.values()) < 500, statuses
    logged = access_log.read_text() + error_log.read_text()
    assert len(access_log.read_text().splitlines()) == len(statuses)
    assert "Invalid HTTP request line" in error_log.read_text()
    for secret in secrets_in_links:
        for form in (secret, quote(secret, safe=""), secret.rsplit(":", 1)[1]):
            assert form not in logged
    # What an operator needs stays: method, route, subscriber id, status, addresses.
    for route in ("/preferences/", "/unsubscribe/", "/confirm/", "/digest/"):
        assert f'"GET {route}{reader.pk}.[redacted]/ HTTP/1.1" {statuses[route.strip("/")]} ' in logged, route
    assert f"Listening at: http://127.0.0.1:{port} " in logged


def test_redaction_leaves_everything_but_tokens_alone():
    from subscriptions.token_redaction import redact_tokens

    ordinary = [
        '10.0.0.5 - - [30/Nov/2026:03:29:04 +0000] "GET /static/admin/css/base.5af66c1b1797.css?v=1.2.3 HTTP/1.1" 200 21',
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36",
        "Listening at: http://127.0.0.1:38429 (14276), [2001:db8::1]:443, ::ffff:192.0.2.1, took 12.345678 s",
        "/admin/subscriptions/subscriber/12/change/ /anymail/mailgun/tracking/ /preferences/12.forged/",
    ]
    for line in ordinary:
        assert redact_tokens(line) == line
    # Every spelling a client may send of the same link, compressed payloads too.
    signed = "e30:1xXs4c:QpzYEXlw_X1tzPNHNcGVElLBcMIK7JKh6P2d9ummb6Q"
    for token in (f"7.{signed}", f"7..eJxTKkktLlGyUlAqS8wpTgUAKJgFLQ:{signed[4:]}", f"7.{signed}".replace(":", "%3A"),
                  f"7%2e{signed}".replace(":", "%3a")):
        assert redact_tokens(f"GET /unsubscribe/{token}/ HTTP/1.1") == "GET /unsubscribe/7.[redacted]/ HTTP/1.1", token
    # A vote's token (newsletter/feedback/tokens.py): "<id>.<delivery>.<paper>:<signature>".
    vote = "7.81.9053:Qp_zYEXlw_X1tzPNHNcGVElLBcMIK7JKh6P2d9ummb6"
    for token in (vote, vote.replace(":", "%3A"), vote.replace(".", "%2E")):
        assert redact_tokens(f"POST /feedback/{token}/more/ HTTP/1.1") == "POST /feedback/7.[redacted]/more/ HTTP/1.1", token
    # Linear in what a client sends: 8 kB of near-tokens (a quadratic pattern took 0.3 s here).
    near_tokens = "GET /" + ("1." + "a" * 19 + ":") * 400
    started = time.perf_counter()
    assert redact_tokens(near_tokens) == near_tokens
    assert time.perf_counter() - started < 0.05
