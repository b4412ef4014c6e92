"""Issue 12: the README's first minutes. `manage.py first_digest` (make demo) loads the shipped
sample papers with no network, subscribes the address and sends its digest now."""

from email import message_from_bytes, policy

from django.core.management import call_command

from newsletter.models import Delivery, ScrapeRun
from subscriptions.models import ConsentEvent, Subscriber


def test_first_digest_loads_the_sample_and_sends_one_digest(db, topics, settings, tmp_path, capsys):
    settings.EMAIL_BACKEND = "newsletter.mail_backends.OutboxEmailBackend"
    settings.EMAIL_OUTBOX_DIR = tmp_path
    call_command("first_digest", email="newcomer@example.org")
    out = capsys.readouterr().out

    run = ScrapeRun.objects.get()
    assert run.status == ScrapeRun.Status.OK and run.papers_found == 17
    reader = Subscriber.objects.get(email="newcomer@example.org")
    assert reader.status == Subscriber.Status.ACTIVE and reader.topics.count() >= 3
    assert reader.consent_events.filter(kind=ConsentEvent.Kind.ADMIN).count() == 1
    delivery = Delivery.objects.get(subscriber=reader)
    assert delivery.status == Delivery.Status.SENT

    [eml] = tmp_path.glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "newcomer@example.org"
    html = (tmp_path / "first-digest.html").read_text()
    assert html == message.get_body(preferencelist=("html",)).get_content()
    assert html.count(">More like this</a>") == delivery.content.items.count() > 0
    assert f"in a browser:     {(tmp_path / 'first-digest.html').as_uri()}" in out
    assert str(eml) in out

    # Once a day, never twice: a second run sends nothing new and says so.
    call_command("first_digest", email="newcomer@example.org")
    assert len(list(tmp_path.glob("*.eml"))) == 1
    assert "already had today's digest" in capsys.readouterr().out
