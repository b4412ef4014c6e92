"""Mailgun: the provider contract (contract.py) against the fake Mailgun."""

from ..support.fake_providers import FakeMailgun
from .contract import ProviderContract


class TestMailgun(ProviderContract):
    fake_class = FakeMailgun
