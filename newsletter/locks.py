"""A lock shared by every worker and beat: redis-py's Lock (atomic, expiring, owner-checked
release) on the cache's Redis when REDIS_URL is set; with the embedded file cache, an expiring
cache.add() key (good enough for one machine)."""

import logging
import secrets
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import LockError

from newsletter.logs import EventLog

log = EventLog(__name__)


def redis_client():
    """The redis.Redis client behind Django's RedisCache, or None without Redis."""
    if not settings.REDIS_URL:
        return None
    get_client = getattr(getattr(cache, "_cache", None), "get_client", None)
    return get_client(None, write=True) if get_client else None


@contextmanager
def exclusive(name: str, timeout: int):
    """`with exclusive("scrape", 600) as acquired:` — `acquired` is False if someone else holds
    the lock; it is never waited for. The lock expires after `timeout` seconds in case its
    holder dies."""
    client = redis_client()
    if client is not None:
        lock = client.lock(cache.make_key(f"lock:{name}"), timeout=timeout)
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    lock.release()
                except LockError:
                    log("lock.expired", level=logging.WARNING, lock=name, reason="it expired before its holder finished")
        return

    key, token = f"lock:{name}", secrets.token_hex(16)
    acquired = cache.add(key, token, timeout)
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)
