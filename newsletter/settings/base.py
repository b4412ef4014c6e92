"""Settings shared by every environment. Everything an operator may change comes from
environment variables (django-environ); development.py / production.py / test.py only
change defaults and add safety checks. Internal tuning (time-outs, backoffs, retries, the
paper sources, the digest ranking) is not here: its defaults are in newsletter/app_settings.py,
and a settings module may still override any of them."""

from pathlib import Path
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from newsletter.email_providers import anymail_settings_from_env, email_backend_for

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# var/ holds everything the embedded defaults write: SQLite, broker folders, outbox, cache.
VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))

INSECURE_DEFAULT_SECRET_KEY = "django-insecure-development-only-key-change-me"
SECRET_KEY = env("SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute base for every link put into an email (no trailing slash).
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
SITE_NAME = env("SITE_NAME", default="Trending Papers Digest")

# Reverse proxies in front of gunicorn, each appending to X-Forwarded-For and setting
# X-Forwarded-Proto (nginx, Caddy, a load balancer; see newsletter/client_ip.py). With 0 the
# site is exposed directly and both headers are only the client's claims, so they are ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT is the number of proxies in front: 0 or more.")
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (newsletter/security_headers.py). The public pages run only our own
# static scripts (no inline script: the sign-up form's timezone.js fills in the browser's zone)
# and load nothing from elsewhere; base.html's one <style> block needs 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The admin runs its own static scripts, and its digest preview (a srcdoc frame, which
# inherits this policy) shows the email's inline styles and remote images.
CONTENT_SECURITY_POLICY_ADMIN = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    "object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

INSTALLED_APPS = [
    # The admin with the operator's dashboard as its first page (newsletter/admin_site.py).
    "newsletter.admin_site.OperatorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "subscriptions",
    "newsletter",
    # The public archive and feeds; an app of its own for its template tag (newsletter/archive/).
    "newsletter.archive",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "newsletter.security_headers.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "newsletter.urls"
WSGI_APPLICATION = "newsletter.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "newsletter.context_processors.site",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis serves as broker and cache. Without it the embedded defaults need no server:
# kombu's filesystem transport and a file-based cache (shared by web, worker and beat).
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False

# Celery: results are not used (state lives in the database); a task is acknowledged only
# after it ran, and re-queued if its worker dies, so every task must be idempotent.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Forms: 1 MB bodies are refused before they reach a view.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

# --- Email -----------------------------------------------------------------------------
# EMAIL_PROVIDER: console (default: console + var/outbox/*.eml), smtp, or any Anymail ESP
# (postmark, mailgun, sendgrid, amazon_ses, brevo, resend, sparkpost, mailjet, ...).
EMAIL_PROVIDER = env("EMAIL_PROVIDER", default="console")
EMAIL_BACKEND = email_backend_for(EMAIL_PROVIDER)
EMAIL_OUTBOX_DIR = Path(env("EMAIL_OUTBOX_DIR", default=str(VAR_DIR / "outbox")))
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
# Each ESP reads its usual variables (MAILGUN_API_KEY, MAILGUN_API_URL, POSTMARK_SERVER_TOKEN,
# ...) plus ANYMAIL_WEBHOOK_SECRET for the tracking webhooks.
ANYMAIL = anymail_settings_from_env(env)
# Whose tracking webhook is mounted (/anymail/<esp>/tracking/): the sending provider, or set
# it when mail goes out through that provider's SMTP relay (EMAIL_PROVIDER=smtp).
WEBHOOK_PROVIDER = env("WEBHOOK_PROVIDER", default=EMAIL_PROVIDER).strip().lower()
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Trending Papers <papers@localhost>")
SERVER_EMAIL = env("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
ADMINS = [("Admin", a) for a in env.list("ADMINS", default=[])]
# Shown in every digest footer (CAN-SPAM / GDPR: who sends this).
# The placeholders below are for trying the service out; production refuses to start with
# either (settings/production.py): a digest must say who really sends it, from a real domain.
PLACEHOLDER_POSTAL_ADDRESS = "Trending Papers Digest, 1 Example Street, 00000 Example City"
SENDER_POSTAL_ADDRESS = env("SENDER_POSTAL_ADDRESS", default=PLACEHOLDER_POSTAL_ADDRESS)

# --- Subscriptions ----------------------------------------------------------------------
CONFIRMATION_LINK_MAX_AGE = env.int("CONFIRMATION_LINK_MAX_AGE", default=7 * 24 * 3600)
# An expired confirmation link may ask for a fresh one until it is this old (seconds).
CONFIRMATION_RESEND_MAX_AGE = env.int("CONFIRMATION_RESEND_MAX_AGE", default=30 * 24 * 3600)
# Emails anyone can make us send to an address (confirmation, "already subscribed", a link to
# the preferences): at most this many per address in 24 hours, whoever asks from wherever.
EMAILS_PER_ADDRESS_PER_DAY = env.int("EMAILS_PER_ADDRESS_PER_DAY", default=3)
# Per-IP sign-up limit (django-ratelimit syntax, counted in the cache).
SIGNUP_RATE_LIMIT = env("SIGNUP_RATE_LIMIT", default="10/m")
RATELIMIT_USE_CACHE = "default"
# The limit counts the client address the consent log records (TRUSTED_PROXY_COUNT above).
RATELIMIT_IP_META_KEY = "newsletter.client_ip.ratelimit_ip"
if env("RATELIMIT_IP_META_KEY", default="") not in ("", "REMOTE_ADDR", RATELIMIT_IP_META_KEY):
    # HTTP_X_FORWARDED_FOR made `a, b` or a missing header a 500 and let clients pick their address.
    raise ImproperlyConfigured(
        "RATELIMIT_IP_META_KEY is replaced by TRUSTED_PROXY_COUNT, the number of reverse proxies in front (see .env.example)."
    )

# --- Digests ---------------------------------------------------------------------------
# Papers come only from a recent successful scrape, and never while the newest run failed.
DIGEST_MAX_SCRAPE_AGE_HOURS = env.int("DIGEST_MAX_SCRAPE_AGE_HOURS", default=36)
# Deliveries per Celery task, and recipients per provider call (capped by the provider's own limit).
DIGEST_CHUNK_SIZE = env.int("DIGEST_CHUNK_SIZE", default=1000)
DIGEST_BATCH_SIZE = env.int("DIGEST_BATCH_SIZE", default=1000)
# Messages per second for all workers together (a token bucket in Redis); 0 = no limit.
DIGEST_RATE_LIMIT = env.float("DIGEST_RATE_LIMIT", default=0)
# Soft bounces in a row that suppress an address.
DIGEST_SOFT_BOUNCE_LIMIT = env.int("DIGEST_SOFT_BOUNCE_LIMIT", default=3)
# Optional second List-Unsubscribe target, e.g. unsubscribe@example.org (its inbox must act on it).
LIST_UNSUBSCRIBE_MAILTO = env("LIST_UNSUBSCRIBE_MAILTO", default="")
# RFC 2919 list identifier; default "<site name> <digest.<site host>>".
DIGEST_LIST_ID = env("DIGEST_LIST_ID", default="")
# "View in browser" links work for this many seconds after the digest was sent.
DIGEST_VIEW_LINK_MAX_AGE = env.int("DIGEST_VIEW_LINK_MAX_AGE", default=30 * 24 * 3600)
CELERY_BEAT_SCHEDULE["dispatch-digests"] = {
    "task": "newsletter.tasks.digests.dispatch_digests",
    "schedule": crontab(minute="*/15"),
}
# Digest chunks have a queue of their own, so a big run never delays a confirmation email;
# a worker started without -Q consumes both queues.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {"celery": {}, "digests": {}}
CELERY_TASK_ROUTES = {"newsletter.tasks.digests.send_digest_chunk": {"queue": "digests"}}

# --- Scraping and topics -----------------------------------------------------------------
# The page scraped every day: the trending page, a daily page (/papers/date/YYYY-MM-DD) or
# the JSON API (/api/daily_papers?date=YYYY-MM-DD).
SCRAPE_SOURCE_URL = env("SCRAPE_SOURCE_URL", default="https://huggingface.co/papers/trending")
# Sent in the User-Agent so the site's operators can reach whoever runs this scraper.
SCRAPE_CONTACT_URL = env("SCRAPE_CONTACT_URL", default=SITE_URL)
SCRAPE_MAX_BYTES = env.int("SCRAPE_MAX_BYTES", default=20 * 1024 * 1024)
# Hosts a redirect may lead the scraper to (exact names); the host of the URL being scraped
# always may. Each host's own robots.txt is honoured.
SCRAPE_ALLOWED_HOSTS = env.list("SCRAPE_ALLOWED_HOSTS", default=[urlsplit(SCRAPE_SOURCE_URL).hostname or ""])
# Fetch https URLs only, redirects included (on in production).
SCRAPE_REQUIRE_HTTPS = env.bool("SCRAPE_REQUIRE_HTTPS", default=False)
# A run finding fewer papers than this share of the last good run of its kind fails.
SCRAPE_MIN_PAPERS_RATIO = env.float("SCRAPE_MIN_PAPERS_RATIO", default=0.5)
SCRAPE_HOUR = env.int("SCRAPE_HOUR", default=5)
SCRAPE_MINUTE = env.int("SCRAPE_MINUTE", default=0)
# The later run that scrapes again only if today's scrape failed or skipped records.
SCRAPE_RETRY_HOUR = env.int("SCRAPE_RETRY_HOUR", default=8)
SCRAPE_RETRY_MINUTE = env.int("SCRAPE_RETRY_MINUTE", default=30)
CELERY_BEAT_SCHEDULE["scrape-papers"] = {
    "task": "newsletter.tasks.scrape.scrape_papers",
    "schedule": crontab(hour=SCRAPE_HOUR, minute=SCRAPE_MINUTE),
}
CELERY_BEAT_SCHEDULE["scrape-papers-retry"] = {
    "task": "newsletter.tasks.scrape.scrape_papers",
    "schedule": crontab(hour=SCRAPE_RETRY_HOUR, minute=SCRAPE_RETRY_MINUTE),
    "kwargs": {"only_if_needed": True},
}
# Which topics a paper belongs to is the topic model's decision (newsletter/topic_model.py,
# its one threshold); digests take every paper it put in a reader's topics.

# --- Deliverability health (newsletter/health.py) ------------------------------------------
# ADMINS get one email a day while the 7-day complaint rate or bounce rate is above these, or
# while no scrape has succeeded for this many hours. Checked by beat every hour.
HEALTH_COMPLAINT_RATE_MAX = env.float("HEALTH_COMPLAINT_RATE_MAX", default=0.001)
HEALTH_BOUNCE_RATE_MAX = env.float("HEALTH_BOUNCE_RATE_MAX", default=0.02)
HEALTH_SCRAPE_MAX_AGE_HOURS = env.int("HEALTH_SCRAPE_MAX_AGE_HOURS", default=36)
CELERY_BEAT_SCHEDULE["check-deliverability"] = {
    "task": "newsletter.tasks.health.check_deliverability",
    "schedule": crontab(minute=20),
}
# The dashboard's cached counts are refreshed in the background (newsletter/dashboard/rollups.py).
CELERY_BEAT_SCHEDULE["refresh-dashboard"] = {
    "task": "newsletter.tasks.dashboard.refresh_dashboard",
    "schedule": crontab(minute="*/10"),
}
# Readers' models are retrained as soon as they tell us something (newsletter/personal/signals.py);
# this sweep catches any task that was lost, before the top of the hour when most digests go out.
CELERY_BEAT_SCHEDULE["retrain-readers"] = {
    "task": "newsletter.tasks.personal.retrain_readers",
    "schedule": crontab(minute=50),
}

# One log format everywhere: web, management commands and Celery workers (which set up their
# own logging); our own messages are key=value events (newsletter/logs.py).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CELERY_WORKER_LOG_FORMAT = LOG_FORMAT
CELERY_WORKER_TASK_LOG_FORMAT = LOG_FORMAT
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "once_an_hour": {"()": "newsletter.log_filters.OncePerInterval", "seconds": 3600},
        # Django logs request paths ("Forbidden (CSRF cookie not set.): /preferences/<token>/"):
        # a log reader must not get working links.
        "redact_tokens": {"()": "subscriptions.token_redaction.RedactTokens"},
    },
    "formatters": {
        "plain": {"format": LOG_FORMAT},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_tokens"]},
        "mail_admins": {"class": "django.utils.log.AdminEmailHandler", "level": "ERROR", "filters": ["redact_tokens"]},
        "mail_admins_hourly": {
            "class": "django.utils.log.AdminEmailHandler", "level": "ERROR", "filters": ["once_an_hour", "redact_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"handlers": ["console", "mail_admins"], "level": "ERROR", "propagate": False},
        # Anyone can make these log an error (a wrong webhook password, an oversized form): each
        # is logged, at most one an hour per kind is mailed (a wrong secret of ours loses bounces).
        "django.security": {"handlers": ["console", "mail_admins_hourly"], "propagate": False},
        # Scanners send forged Host headers all day and there is nothing to do about it: log only.
        "django.security.DisallowedHost": {"handlers": ["console"], "propagate": False},
    },
}
