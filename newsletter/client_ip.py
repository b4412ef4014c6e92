"""The client's address, as far as it can be vouched for: what the sign-up rate limit counts
and the consent log records.

Behind TRUSTED_PROXY_COUNT reverse proxies, each appends the address it got the request from
to X-Forwarded-For, so the client is the Nth entry from the right; anything further left is
the client's own claim. A missing header, one shorter than the chain or an entry that is not
an IP address means the request did not come through the proxies as configured: the
connecting address (REMOTE_ADDR) is used instead. Nothing here raises."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    remote = _address(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(hops) < proxies:
        return remote
    return _address(hops[-proxies]) or remote


def ratelimit_ip(request) -> str:
    """RATELIMIT_IP_META_KEY for django-ratelimit, which needs an address: requests without
    one (a Unix socket and no trusted proxy) share a single allowance instead of failing."""
    return client_ip(request) or "0.0.0.0"


def _address(value: str) -> str | None:
    value = value.strip()
    if "%" in value:  # an IPv6 zone ("fe80::1%eth0") is meaningless here and trips the rate limiter
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; count them as IPv4, not
    # as one IPv6 /64 that all of them would share.
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)
