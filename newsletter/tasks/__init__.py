"""Celery tasks of the newsletter app, one module per job (found by autodiscover)."""
