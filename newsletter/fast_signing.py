"""django.core.signing's Signer and TimestampSigner, signing the very same bytes faster.

A digest carries a dozen signed links per reader (preferences, unsubscribe, view, one vote
token per paper), so at thousands of digests a second Django's pure-Python HMAC plumbing
(salted_hmac: force_bytes, a new hmac.HMAC object per signature) costs more than building
the rest of the email. Here a signer keeps the keyed HMAC (the standard library's) for the key
it derives from its salt and secret, and copies it for each signature. The signature is the one Django computes,
`b64(HMAC(H(salt + "signer" + secret), value))` (tests/test_fast_signing.py compares them),
so links signed either way read either way; everything else (separator, timestamps,
fallback keys, unsign) is Django's own.
"""

import hashlib
import hmac

from django.core import signing
from django.utils.encoding import force_bytes


def _signature(salt: str, value, secret, algorithm: str, keyed: dict) -> str:
    mac = keyed.get(secret)
    if mac is None:
        # salted_hmac's key, derived as Django does.
        key = getattr(hashlib, algorithm)(force_bytes(salt + "signer") + force_bytes(secret)).digest()
        mac = hmac.new(key, digestmod=algorithm)
        if len(keyed) < 8:  # the signing key and a few fallbacks
            keyed[secret] = mac
    # A copy of the keyed HMAC: what a new one would be, without setting the key up again.
    mac = mac.copy()
    mac.update(force_bytes(value))
    return signing.b64_encode(mac.digest()).decode()


class _Fast:
    def __init__(self, *, salt=None, **kwargs):
        # Django's default salt names the class: keep Django's class name, so it signs alike.
        super().__init__(salt=salt or f"django.core.signing.{type(self).__name__}", **kwargs)

    def signature(self, value, key=None):
        return _signature(self.salt, value, key or self.key, self.algorithm, self.__dict__.setdefault("_keyed", {}))


class Signer(_Fast, signing.Signer):
    pass


class TimestampSigner(_Fast, signing.TimestampSigner):
    pass
