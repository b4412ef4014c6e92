"""newsletter.fast_signing signs exactly what django.core.signing signs, so links in digests
already sent keep working and Django's own signers read ours (and the reverse)."""

import pytest
from django.core import signing
from django.test import override_settings

from newsletter import fast_signing
from newsletter.feedback import tokens as feedback_tokens
from subscriptions import tokens

VALUES = ["", "1.2.3", "12345.67890.55", "é ü 漢字", "x" * 300, "a:b:c"]
SALTS = ["newsletter.feedback.vote", "subscriptions.preferences:7:s3cr3t", "", "ü-salt"]


@pytest.mark.parametrize("salt", SALTS)
@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "sha1"])
def test_signatures_are_djangos(salt, algorithm):
    ours, theirs = fast_signing.Signer(salt=salt, algorithm=algorithm), signing.Signer(salt=salt, algorithm=algorithm)
    for value in VALUES:
        assert ours.sign(value) == theirs.sign(value)
        assert theirs.unsign(ours.sign(value)) == value
        assert ours.unsign(theirs.sign(value)) == value
    with pytest.raises(signing.BadSignature):
        ours.unsign(signing.Signer(salt=salt + "x", algorithm=algorithm).sign("1.2.3"))


def test_timestamped_objects_are_djangos(monkeypatch):
    monkeypatch.setattr(signing.time, "time", lambda: 1_800_000_000.5)
    salt = "subscriptions.view-digest:42:secret"
    for obj in [{}, {"d": 123456}, {"signup": 9, "x": "ü"}]:
        signed = fast_signing.TimestampSigner(salt=salt).sign_object(obj)
        assert signed == signing.TimestampSigner(salt=salt).sign_object(obj)
        assert signing.TimestampSigner(salt=salt).unsign_object(signed) == obj


@override_settings(SECRET_KEY="new-" + "k" * 60, SECRET_KEY_FALLBACKS=["old-" + "k" * 60])
def test_fallback_keys_still_read_and_a_changed_key_is_used_at_once():
    old = signing.Signer(key="old-" + "k" * 60, salt="s").sign("1.2.3")
    signer = fast_signing.Signer(salt="s")
    assert signer.unsign(old) == "1.2.3"
    assert signer.sign("1.2.3") == signing.Signer(salt="s").sign("1.2.3") != old


def test_the_link_tokens_are_djangos(monkeypatch):
    """The digest's tokens, made by the fast signers, equal Django's for the same inputs."""
    monkeypatch.setattr(signing.time, "time", lambda: 1_800_000_000.0)

    class Reader:
        pk, secret = 31337, "reader-secret"

    for purpose, data in [(tokens.PREFERENCES, None), (tokens.UNSUBSCRIBE, None), (tokens.VIEW_DIGEST, {"d": 77})]:
        salt = f"subscriptions.{purpose}:31337" + ("" if purpose == tokens.UNSUBSCRIBE else ":reader-secret")
        expected = "31337." + signing.TimestampSigner(salt=salt).sign_object(data or {})
        assert tokens.make_token(Reader, purpose, data) == expected
    assert feedback_tokens.make(1, 2, 3) == signing.Signer(salt="newsletter.feedback.vote").sign("1.2.3")
