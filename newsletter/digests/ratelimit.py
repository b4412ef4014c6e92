"""The provider's rate limit, shared by every worker on every machine: a token bucket kept in
Redis and updated by one Lua script, so reading and taking tokens is a single atomic step.

A caller reserves the tokens for its whole call at once; if the bucket runs into debt the
caller is told how long to wait before sending. Reserving first means callers are served in
arrival order and a batch larger than the bucket still goes out, at the limited rate.
"""

import time

import redis
from django.conf import settings

# KEYS[1] bucket; ARGV: rate (tokens/s), capacity, tokens wanted. Returns the wait in
# microseconds (0 = go now). Redis' own clock is used, so workers' clocks do not matter.
_TAKE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate / 1000000) - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(1000 * (capacity - tokens) / rate) + 60000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens * 1000000 / rate)
"""


class TokenBucket:
    def __init__(self, rate: float, capacity: float | None = None, key: str = "newsletter:digests:ratelimit", client=None):
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, self.rate))
        self.key = key
        self.client = client or redis.Redis.from_url(settings.REDIS_URL)
        self._take = self.client.register_script(_TAKE)

    def reserve(self, tokens: int) -> float:
        """Take `tokens` now; returns how many seconds to wait before using them."""
        return self._take(keys=[self.key], args=[self.rate, self.capacity, tokens]) / 1_000_000

    def acquire(self, tokens: int, sleep=time.sleep) -> float:
        """Take `tokens` and wait until they may be used; returns the seconds waited."""
        wait = self.reserve(tokens)
        if wait > 0:
            sleep(wait)
        return wait


class LocalBucket:
    """The same limit within one process, for setups without Redis (the embedded defaults)."""

    def __init__(self, rate: float, capacity: float | None = None):
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, self.rate))
        self.tokens, self.at = self.capacity, time.monotonic()

    def acquire(self, tokens: int, sleep=time.sleep) -> float:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate) - tokens
        self.at = now
        wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            sleep(wait)
        return wait


class NoLimit:
    def acquire(self, tokens: int, sleep=time.sleep) -> float:
        return 0.0


_bucket = None


def provider_bucket():
    """The bucket for DIGEST_RATE_LIMIT (messages per second for all workers together)."""
    global _bucket
    rate = settings.DIGEST_RATE_LIMIT
    if _bucket is None or getattr(_bucket, "rate", 0) != rate:
        if rate <= 0:
            _bucket = NoLimit()
        elif settings.REDIS_URL:
            _bucket = TokenBucket(rate)
        else:
            _bucket = LocalBucket(rate)
    return _bucket
