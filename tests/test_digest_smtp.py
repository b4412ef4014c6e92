"""Digests over SMTP: a real Celery worker sends one message per recipient over one SMTP
connection to a real SMTP server (aiosmtpd) on loopback. Scraped text arrives escaped in
the HTML part and literal in the text part."""

import re
import time
from collections import Counter

import pytest

from newsletter.models import Delivery
from newsletter.tasks.digests import dispatch_now
from subscriptions import tokens

from .helpers import make_subscriber, path_of
from .support.digest_runs import wait_settled

pytestmark = pytest.mark.worker

HOSTILE_TITLE = '<script>alert("x")</script> Ask & "Quote" it\'s naïve 🚀 Ünïcode'
HOSTILE_ABSTRACT = 'We <b>bold</b> & <img src=x onerror=alert(1)> "compare" façade — 東京 %recipient.unsubscribe_url%'


def hostile_papers():
    return [
        dict(arxiv_id="2611.10001", title=HOSTILE_TITLE, abstract=HOSTILE_ABSTRACT,
             authors=["O'Brien <ob@example.org>", "Zoë Ångström", "李雷", "Fourth Author"], upvotes=7,
             github_repo="javascript:alert(1)", topics={"agents": 9.0}),
        dict(arxiv_id="2611.10002", title="A plain second paper", ai_summary="Plain.", authors=["Ada"], upvotes=3,
             github_repo="https://github.com/example/plain", github_stars=12, topics={"agents": 5.0}),
    ]


def test_smtp_digests_arrive_once_each_with_their_own_headers_and_escaped_text(celery_worker, topics, make_scrape):
    sink = celery_worker.smtp_sink
    make_scrape(hostile_papers())
    readers = [make_subscriber(f"smtp{i}@example.org", topics=[topics["agents"]]) for i in range(12)]

    dispatch_now(ignore_hour=True)
    received = sink.wait_for(12)
    wait_settled()
    time.sleep(0.5)
    assert len(received) == 12, celery_worker.output()[-3000:]
    assert Counter(m["envelope_to"][0] for m in received) == Counter(r.email for r in readers)
    assert {d.status for d in Delivery.objects.all()} == {"sent"}

    message_ids = set()
    for item in received:
        message = item["message"]
        to = item["envelope_to"][0]
        assert message["To"] == to
        message_ids.add(message["Message-ID"])
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        [url] = re.findall(r"<(https?://[^>]+)>", message["List-Unsubscribe"])
        owner, _ = tokens.read_token(path_of(url).split("/")[2], tokens.UNSUBSCRIBE)
        assert owner.email == to
        # The count, the reader's topics and their date: no scraped text (issue 12).
        day = Delivery.objects.get(subscriber__email=to).digest_date
        assert message["Subject"] == f"2 new in Agents and tool use · {day:%-d %b}"

        html = message.get_body(preferencelist=("html",)).get_content()
        text = message.get_body(preferencelist=("plain",)).get_content()
        # HTML: every scraped character escaped, nothing executable, readable non-ASCII.
        assert "<script>" not in html and "<b>bold" not in html and "<img src=x" not in html
        # (css-inline re-serialises text nodes the HTML5 way: quotes stay literal there.)
        assert '&lt;script&gt;alert("x")&lt;/script&gt; Ask &amp; "Quote" it\'s naïve 🚀 Ünïcode</a>' in html
        assert "O'Brien &lt;ob@example.org&gt;" in html and "Zoë Ångström" in html and "東京" in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "javascript:" not in html
        assert 'href="https://github.com/example/plain"' in html and "★ 12" in html
        assert f'href="{url}"' in html
        # Text: the same characters, literally, and no HTML entity anywhere.
        flat = " ".join(text.split())
        assert HOSTILE_TITLE in flat
        assert "We <b>bold</b> & <img src=x onerror=alert(1)> \"compare\" façade — 東京" in flat
        assert "O'Brien <ob@example.org>, Zoë Ångström, 李雷 et al." in flat
        assert not re.search(r"&(amp|lt|gt|quot|#x?[0-9a-f]+);", text, re.I)
        # Scraped text cannot borrow a provider merge field.
        assert "%recipient.unsubscribe_url%" not in text and "%\u200brecipient.unsubscribe_url%" in text
        assert url in text
    assert len(message_ids) == 12
    # All twelve went over connections the worker opened per chunk, not one per message.
    assert "event=digest.chunk" in celery_worker.output()
