"""Issue 12: the unsubscribe page offers "pause" and "weekly instead" beside the button."""

from django.test import Client

from subscriptions.models import ConsentEvent, Subscriber

from .helpers import make_subscriber, unsubscribe_path


def test_the_unsubscribe_page_offers_pause_and_weekly_and_both_work(db, topics):
    reader = make_subscriber("maybe@example.org", topics=[topics["agents"]])
    client = Client()
    page = client.get(unsubscribe_path(reader)).content.decode()
    assert ">Unsubscribe</button>" in page and ">Pause my digests</button>" in page and ">Weekly instead</button>" in page
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.ACTIVE  # the page alone changes nothing

    answer = client.post(unsubscribe_path(reader), {"instead": "weekly"})
    assert answer.status_code == 200 and "Weekly instead" in answer.content.decode()
    reader.refresh_from_db()
    assert (reader.status, reader.frequency, reader.paused) == (Subscriber.Status.ACTIVE, "weekly", False)
    event = reader.consent_events.get(kind=ConsentEvent.Kind.PREFERENCES)
    assert event.details == {"changes": {"frequency": {"from": "daily", "to": "weekly"}}, "method": "unsubscribe page"}
    # Weekly already: only pause is offered now.
    page = client.get(unsubscribe_path(reader)).content.decode()
    assert ">Weekly instead</button>" not in page and ">Pause my digests</button>" in page

    answer = client.post(unsubscribe_path(reader), {"instead": "pause"})
    assert "Your digests are paused" in answer.content.decode()
    reader.refresh_from_db()
    assert reader.paused and reader.status == Subscriber.Status.ACTIVE
    assert reader.consent_events.filter(kind=ConsentEvent.Kind.PAUSE).count() == 1
    # The answer holds no working personal link (the unsubscribe link may be anyone's).
    assert "/preferences/" in answer.content.decode() and f"/preferences/{reader.pk}." not in answer.content.decode()


def test_one_click_and_the_button_still_unsubscribe(db, topics):
    reader = make_subscriber("gone@example.org", topics=[topics["agents"]])
    Client().post(unsubscribe_path(reader), "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.UNSUBSCRIBED
    # An unsubscribed reader is not offered alternatives, and "instead" cannot bring mail back.
    page = Client().get(unsubscribe_path(reader)).content.decode()
    assert "Pause my digests" not in page and "Weekly instead" not in page
    Client().post(unsubscribe_path(reader), {"instead": "weekly"})
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.UNSUBSCRIBED and reader.frequency == "daily"
