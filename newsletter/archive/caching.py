"""The archive's page decorator: every page and feed is the same for everyone until the archive's
state changes (state.py), so

1. the state is read (three small queries) and with the path and page number makes the ETag;
   Last-Modified is when the newest good scrape finished. A request that already has this
   version gets 304 without anything rendered (django.views.decorators.http.condition).
2. Else the body comes from Django's cache, keyed on the same fingerprint: a new scrape or a
   new topic assignment is a new key, so nothing is ever deleted by hand.
3. Else the view renders it, and a 200 is cached for ARCHIVE_CACHE_SECONDS.

Only the path and `page` make a key (other query parameters are ignored, so they cannot fill
the cache), and nothing in a page depends on the request otherwise (no cookie, no Host:
feeds build their links from SITE_URL). Browsers and proxies may keep a page
ARCHIVE_BROWSER_MAX_AGE seconds, then ask again with If-None-Match."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import wraps

from django.core.cache import cache
from django.http import HttpResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import condition, require_safe

from newsletter.app_settings import app_settings

from .state import ArchiveState

CACHE_PREFIX = "archive:page"
NOT_A_PAGE = "not a page"


def page_number(request) -> str:
    """`?page=` as the key and the views read it: "01" is "1"; anything but a plain number of
    up to 12 digits is NOT_A_PAGE, which the views answer with a 404 (never cached)."""
    number = request.GET.get("page", "1")
    return str(int(number)) if number.isascii() and number.isdigit() and len(number) <= 12 else NOT_A_PAGE


@dataclass(frozen=True)
class PageVersion:
    cache_key: str
    etag: str
    last_modified: datetime | None

    @classmethod
    def of(cls, request, state: ArchiveState) -> "PageVersion":
        what = f"{request.path}\n{page_number(request)}"
        digest = hashlib.blake2b(f"{state.fingerprint}\n{what}".encode(), digest_size=12).hexdigest()
        return cls(f"{CACHE_PREFIX}:{digest}", f'"{digest}"', state.last_modified)


def _etag(request, *args, **kwargs):
    return request.archive_page.etag


def _last_modified(request, *args, **kwargs):
    return request.archive_page.last_modified


def _from_cache(view):
    @wraps(view)
    def cached(request, *args, **kwargs):
        key = request.archive_page.cache_key
        hit = cache.get(key)
        if hit is not None:
            content, content_type = hit
            return HttpResponse(content, content_type=content_type)
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not response.streaming:
            # The version's own Last-Modified (condition sets it), not one the view chose
            # (django.contrib.syndication sets the newest entry's date).
            response.headers.pop("Last-Modified", None)
            cache.set(key, (response.content, response["Content-Type"]), app_settings.ARCHIVE_CACHE_SECONDS)
        return response

    return cached


def archive_page(view):
    """Decorate a public archive view or feed (GET and HEAD only) as described above."""
    conditional = condition(etag_func=_etag, last_modified_func=_last_modified)(_from_cache(view))

    @require_safe
    @wraps(view)
    def page(request, *args, **kwargs):
        request.archive_state = ArchiveState.current()
        request.archive_page = PageVersion.of(request, request.archive_state)
        response = conditional(request, *args, **kwargs)
        if response.status_code in (200, 304):
            patch_cache_control(response, public=True, max_age=app_settings.ARCHIVE_BROWSER_MAX_AGE)
        return response

    return page
