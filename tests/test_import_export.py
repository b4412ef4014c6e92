"""CSV import and export of subscribers (subscriptions/importing.py, exporting.py), through
the functions, the management commands and the admin: double opt-in by default, confirmed
elsewhere only with a consent note in the log, idempotent, never reactivating anyone who left,
every refused row reported with its reason, and a file that exports and imports back
unchanged."""

import csv
import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from newsletter import health
from subscriptions import exporting
from subscriptions.importing import Mode, import_csv
from subscriptions.models import ConsentEvent, Subscriber

from .helpers import email_text, links_in, make_subscriber, path_of

pytestmark = pytest.mark.django_db

IMPORT_URL = reverse("admin:subscriptions_subscriber_import")
SUBSCRIBERS = reverse("admin:subscriptions_subscriber_changelist")


def csv_text(*rows: str, header: str = "email,topics,frequency") -> io.StringIO:
    return io.StringIO("\n".join([header, *rows]) + "\n")


def run(text, mode=Mode.DOUBLE_OPT_IN, note="", capture=None):
    if capture is None:
        return import_csv(text, mode, note, source="list.csv", by="test")
    with capture(execute=True):
        return import_csv(text, mode, note, source="list.csv", by="test")


def state() -> tuple:
    """Everything an import may write."""
    through = Subscriber.topics.through.objects
    return (Subscriber.objects.count(), ConsentEvent.objects.count(), through.count(),
            sorted(Subscriber.objects.values_list("email", "status", "secret")))


def test_double_opt_in_invites_each_new_address_through_the_signup_confirmation(client, topics, django_capture_on_commit_callbacks):
    report = run(csv_text("ada@example.org,agents code,weekly", "bo@example.org,robotics,"), capture=django_capture_on_commit_callbacks)
    assert (report.rows, report.invited, report.confirmed, report.unchanged, report.refused) == (2, 2, 0, 0, [])
    ada = Subscriber.objects.get(email="ada@example.org")
    assert ada.status == Subscriber.Status.PENDING and ada.confirmed_at is None
    assert sorted(ada.topics.values_list("slug", flat=True)) == ["agents", "code"]
    signup = ada.consent_events.get()
    assert signup.kind == ConsentEvent.Kind.SIGNUP
    assert signup.details["source"] == "import" and signup.details["file"] == "list.csv" and signup.details["line"] == 2
    assert signup.details["topics"] == ["agents", "code"] and signup.details["frequency"] == "weekly"

    # The same confirmation email as a sign-up on the form, and its link works.
    assert sorted(m.to[0] for m in mail.outbox) == ["ada@example.org", "bo@example.org"]
    [message] = [m for m in mail.outbox if m.to == ["ada@example.org"]]
    [link] = links_in(email_text(message), "/confirm/")
    response = client.post(path_of(link))
    assert response.status_code == 200
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.ACTIVE and ada.frequency == "weekly"
    assert [e.kind for e in ada.consent_events.order_by("id")] == ["signup", "confirm"]


def test_the_same_file_twice_changes_nothing_and_mails_nobody_again(topics, django_capture_on_commit_callbacks):
    rows = ["ada@example.org,agents,daily", "BO@Example.ORG,code,weekly", "cy@example.org,,"]
    first = run(csv_text(*rows), capture=django_capture_on_commit_callbacks)
    assert first.invited == 3 and len(mail.outbox) == 3
    before = state()
    second = run(csv_text(*rows), capture=django_capture_on_commit_callbacks)
    assert (second.rows, second.created, second.unchanged, second.refused) == (3, 0, 3, [])
    assert state() == before
    assert len(mail.outbox) == 3
    # The address is matched whatever its case, as on the sign-up form.
    third = run(csv_text("bo@EXAMPLE.org,code,weekly"), capture=django_capture_on_commit_callbacks)
    assert third.unchanged == 1 and state() == before


def test_refused_rows_are_reported_with_line_and_reason(topics, django_capture_on_commit_callbacks):
    left = {status: make_subscriber(f"{status}@example.org", status=status) for status in ("unsubscribed", "bounced", "complained")}
    events_before = ConsentEvent.objects.count()
    header = "email,topics,frequency,timezone,send_hour,status"
    report = run(csv_text(
        "good@example.org,agents,daily,Europe/Paris,8,",  # line 2
        "not-an-address,agents,daily,,,",  # 3
        "good@EXAMPLE.org,agents,daily,,,",  # 4: same address as line 2
        "topic@example.org,knitting,daily,,,",  # 5
        "zone@example.org,agents,daily,Mars/Olympus,,",  # 6
        "hour@example.org,agents,daily,,25,",  # 7
        "often@example.org,agents,hourly,,,",  # 8
        "unsubscribed@example.org,agents,daily,,,",  # 9
        "BOUNCED@example.org,agents,daily,,,active",  # 10
        "complained@example.org,agents,daily,,,",  # 11
        "odd@example.org,agents,daily,,,vip",  # 12
        ",agents,daily,,,",  # 13
        header=header,
    ), capture=django_capture_on_commit_callbacks)
    reasons = {r.line: r.reason for r in report.refused}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert reasons[3] == "not a valid email address"
    assert reasons[4] == "the same address is on line 2 already"
    assert reasons[5] == "unknown topic 'knitting'"
    assert reasons[6] == "unknown timezone 'Mars/Olympus'"
    assert reasons[7] == "send_hour must be a whole number from 0 to 23, not '25'"
    assert reasons[8] == "unknown frequency 'hourly' (daily or weekly)"
    assert reasons[9] == "this address is unsubscribed here; an import never subscribes it again"
    assert reasons[10] == "this address is bounced here; an import never subscribes it again"
    assert reasons[11] == "this address is complained here; an import never subscribes it again"
    assert reasons[12].startswith("unknown status 'vip'")
    assert reasons[13] == "no email address"
    assert report.invited == 1 and report.rows == 12
    good = Subscriber.objects.get(email="good@example.org")
    assert (good.timezone, good.send_hour) == ("Europe/Paris", 8)
    # Nobody who left was touched, logged or mailed.
    for status, subscriber in left.items():
        subscriber.refresh_from_db()
        assert subscriber.status == status
    assert ConsentEvent.objects.count() == events_before + 1
    assert [m.to for m in mail.outbox] == [["good@example.org"]]


def test_an_address_that_signs_up_during_the_import_is_left_alone(topics, django_capture_on_commit_callbacks):
    """The batch's look-up missed it (it signed up in between): the bulk write conflicts, and
    the batch is written again one row at a time around it."""
    from unittest import mock

    from subscriptions.importing import Importer

    early = make_subscriber("early@example.org", status=Subscriber.Status.ACTIVE)
    with mock.patch.object(Importer, "_known", return_value={}):
        report = run(csv_text("a@example.org,agents,daily", "EARLY@example.org,code,daily", "b@example.org,,"),
                     capture=django_capture_on_commit_callbacks)
    assert (report.invited, report.unchanged, report.refused) == (2, 1, [])
    early.refresh_from_db()
    assert early.status == Subscriber.Status.ACTIVE and not early.consent_events.exists()
    assert sorted(m.to[0] for m in mail.outbox) == ["a@example.org", "b@example.org"]


def test_confirmed_elsewhere_needs_a_note_and_writes_it_to_the_consent_log(topics, django_capture_on_commit_callbacks):
    with pytest.raises(ValueError, match="note"):
        run(csv_text("ada@example.org,agents,daily"), Mode.CONFIRMED_ELSEWHERE, note="")
    assert not Subscriber.objects.exists()
    note = "Signed up on our old site's form (double opt-in), 2021-2024"
    report = run(csv_text("ada@example.org,agents,daily", "pat@example.org,code,daily,pending",
                          header="email,topics,frequency,status"),
                 Mode.CONFIRMED_ELSEWHERE, note=note, capture=django_capture_on_commit_callbacks)
    assert (report.confirmed, report.invited) == (1, 1)
    ada = Subscriber.objects.get(email="ada@example.org")
    assert ada.status == Subscriber.Status.ACTIVE and ada.confirmed_at is not None
    event = ada.consent_events.get()
    assert event.kind == ConsentEvent.Kind.CONFIRM
    assert event.details["consent"] == note and event.details["source"] == "import"
    # A row the old list had not confirmed is still asked to confirm.
    assert Subscriber.objects.get(email="pat@example.org").status == Subscriber.Status.PENDING
    assert [m.to for m in mail.outbox] == [["pat@example.org"]]


def test_an_old_lists_suppressions_come_along_and_are_never_mailed(topics, django_capture_on_commit_callbacks):
    header = "email,status,unsubscribed_at"
    report = run(csv_text("gone@example.org,unsubscribed,2024-03-01T10:00:00+00:00", "spam@example.org,complained,",
                          "dead@example.org,bounced,", header=header),
                 Mode.CONFIRMED_ELSEWHERE, note="Exported from our previous provider", capture=django_capture_on_commit_callbacks)
    assert report.suppressed == 3 and not mail.outbox
    gone = Subscriber.objects.get(email="gone@example.org")
    assert gone.status == "unsubscribed" and gone.unsubscribed_at.year == 2024
    assert gone.consent_events.get().kind == ConsentEvent.Kind.UNSUBSCRIBE
    # They stay out when a later file lists them as subscribers...
    again = run(csv_text("gone@example.org,active,", header=header), capture=django_capture_on_commit_callbacks)
    assert again.refused[0].reason.startswith("this address is unsubscribed here")
    # ...and the old list's complaints and bounces are not this sender's rates.
    make_subscriber("reader@example.org")
    from .helpers import sent_digest

    sent_digest(Subscriber.objects.get(email="reader@example.org"), "postmark")
    assert health.complaint_rate().events == 0 and health.bounce_rate().events == 0


def make_varied_list(topics):
    make_subscriber("ada@example.org", topics=[topics["agents"], topics["code"]], frequency="weekly", weekday=3,
                    timezone="Asia/Tokyo", send_hour=6, papers_per_email=5)
    make_subscriber("bo@example.org", topics=[topics["robotics"]], paused=True)
    make_subscriber("cy@example.org", status=Subscriber.Status.PENDING, topics=[topics["agents"]])
    make_subscriber("di@example.org", status=Subscriber.Status.UNSUBSCRIBED)
    make_subscriber("=cmd|'/C.calc'!A0@example.org", topics=[topics["code"]])  # a formula, to a spreadsheet
    from django.utils import timezone

    Subscriber.objects.update(confirmed_at=timezone.now())
    Subscriber.objects.filter(status="pending").update(confirmed_at=None)
    Subscriber.objects.filter(status="unsubscribed").update(unsubscribed_at=timezone.now())


def exported() -> str:
    out = io.StringIO()
    exporting.write_csv(out)
    return out.getvalue()


def test_export_then_import_gives_back_the_same_list(topics, django_capture_on_commit_callbacks):
    make_varied_list(topics)
    first = exported()
    rows = list(csv.DictReader(io.StringIO(first)))
    assert [r["email"] for r in rows][-1].startswith("'=cmd")  # no formula reaches a spreadsheet
    ada = next(r for r in rows if r["email"] == "ada@example.org")
    assert (ada["status"], ada["topics"], ada["frequency"], ada["weekday"], ada["timezone"], ada["send_hour"], ada["papers_per_email"]) == (
        "active", "agents code", "weekly", "thursday", "Asia/Tokyo", "6", "5")
    with connection.cursor() as cursor:  # a fresh installation (the consent log protects its rows)
        for table in ("subscriptions_consentevent", "subscriptions_subscriber_topics", "subscriptions_subscriber"):
            cursor.execute(f"DELETE FROM {table}")
    report = run(io.StringIO(first), Mode.CONFIRMED_ELSEWHERE, note="Moved from the old server on 2025-01-01",
                 capture=django_capture_on_commit_callbacks)
    assert (report.confirmed, report.invited, report.suppressed, report.refused) == (3, 1, 1, [])
    assert exported() == first
    assert Subscriber.objects.get(email__startswith="=cmd").email == "=cmd|'/C.calc'!A0@example.org"


def test_management_commands(tmp_path, topics, django_capture_on_commit_callbacks):
    make_varied_list(topics)
    target = tmp_path / "list.csv"
    out = io.StringIO()
    call_command("export_subscribers", str(target), stdout=out)
    assert out.getvalue().strip() == f"Wrote 5 subscribers to {target}."
    bad = tmp_path / "new.csv"
    bad.write_text("email,topics\nnew@example.org,agents\nbroken,agents\nada@example.org,agents\n")
    refused = tmp_path / "refused.csv"
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_subscribers", str(bad), "--refused", str(refused), stdout=out)
    text = out.getvalue()
    assert "3 rows: 1 invited (confirmation email queued), 0 added as confirmed elsewhere, 0 added as suppressed, 1 already here" in text
    assert "line 3: broken: not a valid email address" in text
    assert list(csv.reader(refused.open())) == [["line", "email", "reason"], ["3", "broken", "not a valid email address"]]
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="note"):
        call_command("import_subscribers", str(bad), "--confirmed-elsewhere", stdout=io.StringIO())


def test_admin_import_page_shows_a_summary_and_the_refused_rows(admin_client, topics, django_capture_on_commit_callbacks):
    make_subscriber("left@example.org", status=Subscriber.Status.UNSUBSCRIBED)
    changelist = admin_client.get(SUBSCRIBERS).content.decode()
    assert f'href="{IMPORT_URL}"' in changelist and "Import CSV" in changelist
    upload = io.BytesIO(b"email,topics\nnew@example.org,agents\nleft@example.org,agents\nnope,agents\n")
    upload.name = "from-old-tool.csv"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(IMPORT_URL, {"file": upload, "mode": Mode.DOUBLE_OPT_IN, "consent_note": ""})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="count-invited">1<' in page and 'id="count-refused">2<' in page
    assert "this address is unsubscribed here; an import never subscribes it again" in page
    assert "not a valid email address" in page
    assert Subscriber.objects.get(email="new@example.org").consent_events.get().details["by"] == "admin:admin"

    # Confirmed elsewhere without a note: the form says so and nothing is imported.
    upload = io.BytesIO(b"email\nother@example.org\n")
    upload.name = "x.csv"
    response = admin_client.post(IMPORT_URL, {"file": upload, "mode": Mode.CONFIRMED_ELSEWHERE, "consent_note": " "})
    assert "Say where and how these readers gave their consent" in response.content.decode()
    assert not Subscriber.objects.filter(email="other@example.org").exists()

    upload = io.BytesIO(b"name,address\nx,y\n")
    upload.name = "wrong.csv"
    response = admin_client.post(IMPORT_URL, {"file": upload, "mode": Mode.DOUBLE_OPT_IN})
    assert "one of them `email`" in response.content.decode()


def test_view_only_staff_may_export_but_not_import(client, django_user_model, topics):
    make_varied_list(topics)
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    client.force_login(viewer)
    assert client.get(IMPORT_URL).status_code == 403
    upload = io.BytesIO(b"email\nsneaky@example.org\n")
    upload.name = "x.csv"
    assert client.post(IMPORT_URL, {"file": upload, "mode": Mode.DOUBLE_OPT_IN}).status_code == 403
    assert not Subscriber.objects.filter(email="sneaky@example.org").exists()
    assert "Import CSV" not in client.get(SUBSCRIBERS).content.decode()

    chosen = Subscriber.objects.filter(email__in=["ada@example.org", "bo@example.org"])
    response = client.post(SUBSCRIBERS, {"action": "export_csv", ACTION_CHECKBOX_NAME: [s.pk for s in chosen]})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["email"], r["topics"]) for r in rows] == [("ada@example.org", "agents code"), ("bo@example.org", "robotics")]
