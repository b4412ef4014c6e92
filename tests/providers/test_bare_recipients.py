"""BareRecipients (email_providers/base.py): a batch call's bare addresses become the very
EmailAddress objects Anymail's parse would give, and the payload it posts is the same."""

import pytest
from anymail.backends import mailgun as anymail_mailgun
from anymail.message import AnymailMessage
from anymail.utils import parse_address_list
from django.core.mail import get_connection

from newsletter.email_providers import mailgun

BARE = ["reader1@bench.example.org", "A.B+tag@Example.COM", "o'neil@x-y.example", "x!#$%&*/=?^_`{|}~-@a.b.c"]
NOT_BARE = ['"quoted local"@example.org', "Reader <r@example.org>", "üser@example.org", "r@localhost", "a..b@example.org",
            "r@exämple.org", "a@b.c, d@e.f"]

FIELDS = ("display_name", "username", "domain", "addr_spec", "address")


def described(addresses):
    return [tuple(getattr(a, name) for name in FIELDS) for a in addresses]


def outcome(parse, addresses):
    """What a parse gives: the addresses described, or the error it raises."""
    try:
        return described(parse(addresses))
    except Exception as exc:  # noqa: BLE001  (an invalid address must fail the same way)
        return type(exc), str(exc)


@pytest.mark.parametrize("address", BARE + NOT_BARE)
def test_each_address_reads_as_anymail_reads_it(address):
    payload = object.__new__(mailgun.MailgunPayload)
    ours = outcome(payload.parse_recipients, [address])
    assert ours == outcome(lambda a: parse_address_list(a, field="to"), [address])
    if address in BARE:  # taken apart without the parse, and as it was written
        assert ours == [("", *address.rsplit("@", 1), address, address)]


def test_a_list_with_one_other_address_is_parsed_whole_by_anymail():
    payload = object.__new__(mailgun.MailgunPayload)
    mixed = [*BARE, "Reader <r@example.org>"]
    assert outcome(payload.parse_recipients, mixed) == outcome(lambda a: parse_address_list(a, field="to"), mixed)


def test_the_mailgun_payload_is_anymails(settings):
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key", "MAILGUN_SENDER_DOMAIN": "mg.example.org"}
    backend = get_connection("newsletter.email_providers.mailgun.EmailBackend")
    to = [*BARE, "reader2@bench.example.org"]
    message = AnymailMessage(subject="s %recipient.name%", body="b", from_email="Papers <papers@example.org>", to=to)
    message.merge_data = {address: {"name": address} for address in to}
    ours = mailgun.MailgunPayload(message, backend.send_defaults, backend)
    stock = anymail_mailgun.MailgunPayload(message, backend.send_defaults, backend)
    assert ours.serialize_data() == stock.serialize_data()
    assert ours.to_emails == stock.to_emails == to
    assert described(ours.all_recipients) == described(stock.all_recipients)
