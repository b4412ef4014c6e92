"""Issue 12: "your first digest arrives around <time, their zone>" after confirming."""

from datetime import datetime, timezone as dt_timezone

import pytest

from subscriptions.schedule import next_digest

from .helpers import make_subscriber

UTC = dt_timezone.utc


@pytest.mark.parametrize(
    "now, fields, expected",
    [
        # 05:00 UTC = 06:00 in Paris (winter), send hour 7: today at 07:00 Paris time.
        (datetime(2026, 11, 30, 5, 0, tzinfo=UTC), {"timezone": "Europe/Paris", "send_hour": 7},
         "around 07:00 on Monday 30 November (Europe/Paris time)"),
        # 08:00 Paris, send hour 7: due already, the next dispatcher run sends it.
        (datetime(2026, 11, 30, 7, 0, tzinfo=UTC), {"timezone": "Europe/Paris", "send_hour": 7},
         "within the next quarter of an hour (Europe/Paris time 08:00)"),
        # Weekly on Thursday, confirmed on Monday evening in Tokyo.
        (datetime(2026, 11, 30, 12, 0, tzinfo=UTC), {"timezone": "Asia/Tokyo", "send_hour": 9, "frequency": "weekly", "weekday": 3},
         "around 09:00 on Thursday 3 December (Asia/Tokyo time)"),
        # 23:30 in New York on Monday, send hour 6: Tuesday morning.
        (datetime(2026, 12, 1, 4, 30, tzinfo=UTC), {"timezone": "America/New_York", "send_hour": 6},
         "within the next quarter of an hour (America/New_York time 23:30)"),
        (datetime(2026, 12, 1, 4, 30, tzinfo=UTC), {"timezone": "America/New_York", "send_hour": 23, "frequency": "weekly", "weekday": 0},
         "within the next quarter of an hour (America/New_York time 23:30)"),
        (datetime(2026, 12, 1, 4, 30, tzinfo=UTC), {"timezone": "America/New_York", "send_hour": 23, "frequency": "weekly", "weekday": 2},
         "around 23:00 on Wednesday 2 December (America/New_York time)"),
    ],
)
def test_next_digest_in_the_readers_own_time(db, now, fields, expected):
    reader = make_subscriber("when@example.org", **fields)
    assert str(next_digest(reader, now)) == expected


def test_after_todays_digest_the_next_is_tomorrow(db):
    from newsletter.models import Delivery

    reader = make_subscriber("when@example.org", timezone="Europe/Paris", send_hour=7)
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    Delivery.objects.create(subscriber=reader, digest_date=now.date(), status=Delivery.Status.SENT)
    assert str(next_digest(reader, now)) == "around 07:00 on Tuesday 1 December (Europe/Paris time)"
