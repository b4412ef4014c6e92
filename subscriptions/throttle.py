"""How many emails anyone can make us send to one address: EMAILS_PER_ADDRESS_PER_DAY a day
(confirmations, "already subscribed", links to the preferences), whatever IPs the requests come
from. Counted in the cache (Redis), which every web process and worker shares."""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache

DAY = 24 * 3600


def allow_email(address: str) -> bool:
    """Count one more email to `address` today (UTC); False once the day's allowance is spent."""
    # One counter per address and day: it never has to be reset, so no counter can lose its
    # expiry and block an address for good. The cache holds a hash, not the address.
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()
    key = f"subscriptions:emails-to:{digest}:{int(time.time() // DAY)}"
    cache.add(key, 0, timeout=2 * DAY)
    return cache.incr(key) <= settings.EMAILS_PER_ADDRESS_PER_DAY
