"""Scraping Hugging Face's papers pages: fetch (fetch.py), read (parse.py), keep (store.py),
tell the admins when it goes wrong (alerts.py); run.py ties them into one scrape run."""

from .errors import ScrapeError  # noqa: F401
