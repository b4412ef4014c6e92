"""SendGrid: the provider contract (contract.py) against the fake SendGrid.

Anymail has dropped official support for SendGrid: its backend warns on every connection
(AnymailNotSupportedWarning, silenced here) and gets no fixes. These tests are what still
says SendGrid works here."""

import pytest

from ..support.fake_providers import FakeSendGrid
from .contract import ProviderContract

pytestmark = pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")


class TestSendGrid(ProviderContract):
    fake_class = FakeSendGrid
