# The one image for web, worker and beat; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=newsletter.settings.production \
    VAR_DIR=/app/var

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Every package has a wheel.
COPY requirements.txt .
RUN pip install -r requirements.txt

# Run as an unprivileged user; it owns only var/ (static files, beat schedule).
RUN useradd --system --uid 10001 --home-dir /app app
COPY . .
RUN mkdir -p var && chown -R app:app var
USER app

EXPOSE 8000
# Migrations and collectstatic need the runtime settings (SECRET_KEY, DATABASE_URL), so they
# run at start, not at build time. WEB_CONCURRENCY sets gunicorn's worker count; its control
# socket is off because it would live in $HOME, which the app user may not write.
# gunicorn.conf.py blanks the signed tokens in subscribers' links out of both logs.
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py collectstatic --noinput && exec gunicorn newsletter.wsgi --config gunicorn.conf.py --bind 0.0.0.0:8000 --no-control-socket --access-logfile -"]
