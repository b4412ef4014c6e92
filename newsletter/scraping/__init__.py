"""Scraping a paper source's pages: fetch (fetch.py), let the source read them
(newsletter/sources/, with the shared records and cleaners of parse.py), keep (store.py),
tell the admins when it goes wrong (alerts.py); run.py ties them into one scrape run."""

from .errors import ScrapeError  # noqa: F401
