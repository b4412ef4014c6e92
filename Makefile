# Two commands do all the setup:
#   make run   - web form, Celery worker and beat on embedded defaults (no accounts, no servers)
#   make test  - the whole test suite against real PostgreSQL, Redis, Celery and Chromium
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run demo test venv deps dev-deps system-deps services migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

deps: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt

dev-deps: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt

migrate: deps
	$(BIN)/python manage.py migrate --noinput

run: migrate
	@mkdir -p var/outbox
	@# Links in emails must point at the port the site really listens on. The banner process
	@# prints where to look once the site answers, after the start-up noise.
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) SITE_URL="$${SITE_URL:-http://127.0.0.1:$(PORT)}" $(BIN)/honcho -f Procfile.dev start

# Load the shipped sample papers and send a first digest now: no internet, no account.
demo: migrate
	$(BIN)/python manage.py first_digest

system-deps:
	bash scripts/install-system-deps.sh

services:
	bash scripts/ensure-services.sh

test: dev-deps system-deps services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var
