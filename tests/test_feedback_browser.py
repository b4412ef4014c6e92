"""Issue 11 #1 in a real browser (Debian's Chromium through Playwright): a received digest,
"More like this", the button that records it, two more votes on the "rate this digest" page,
and an undo. Screenshots land in tests/artifacts/screenshots/."""

import pytest
from django.core import mail

from newsletter.models import Vote
from newsletter.tasks.digests import dispatch_now

from .helpers import make_subscriber
from .test_browser_flow import DESKTOP, PHONE, Visit, chromium  # noqa: F401  (fixture)
from .test_digest_pages import parsed
from .test_feedback import papers

pytestmark = [pytest.mark.browser]


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=lambda d: d["name"])
def test_a_reader_votes_from_the_email_rates_more_and_undoes_one(device, chromium, live_server, settings, topics, make_scrape):
    settings.SITE_URL = live_server.url
    make_scrape(papers())
    reader = make_subscriber(f"voter-{device['name']}@example.org", topics=[topics["agents"], topics["code"]])
    dispatch_now(ignore_hour=True)
    [message] = [m for m in mail.outbox if m.to == [reader.email]]
    html = parsed(message).get_body(preferencelist=("html",)).get_content()

    visit = Visit(chromium, live_server.url, device)
    page = visit.page
    try:
        page.set_content(html)
        page.screenshot(path=str(visit_path(visit, "digest-in-inbox")), full_page=True)
        assert page.get_by_role("link", name="More like this").count() == 4
        page.get_by_role("link", name="More like this").first.click()
        page.get_by_role("heading", name="More like this?").wait_for()
        assert not Vote.objects.exists()  # opening the link recorded nothing
        visit.snap("vote-confirm")
        page.get_by_role("button", name="More like this").click()
        page.get_by_role("heading", name="Rate this digest").wait_for()
        assert list(Vote.objects.values_list("subscriber__email", "paper__arxiv_id", "value")) == [
            (reader.email, "2611.40001", Vote.MORE)]
        assert page.get_by_text("You said: More like this").is_visible()
        visit.snap("rate-after-first-vote")

        third = page.locator("#paper-" + str(paper_pk("2611.40003")))
        third.get_by_role("button", name="Less like this").click()
        third.get_by_text("You said: Less like this").wait_for()
        fourth = page.locator("#paper-" + str(paper_pk("2611.40004")))
        fourth.get_by_role("button", name="More like this").click()
        page.locator("#paper-" + str(paper_pk("2611.40004"))).get_by_text("You said: More like this").wait_for()
        assert dict(Vote.objects.values_list("paper__arxiv_id", "value")) == {
            "2611.40001": Vote.MORE, "2611.40003": Vote.LESS, "2611.40004": Vote.MORE}
        # A "Less" vote offers to leave the paper's topics.
        assert page.locator("#paper-" + str(paper_pk("2611.40003"))).get_by_role("button", name="Not interested in Agents and tool use").is_visible()
        visit.snap("rate-three-votes")

        page.locator("#paper-" + str(paper_pk("2611.40003"))).get_by_role("button", name="Undo").click()
        page.get_by_text("is undone").wait_for()
        assert dict(Vote.objects.values_list("paper__arxiv_id", "value")) == {"2611.40001": Vote.MORE, "2611.40004": Vote.MORE}
        assert page.locator("#paper-" + str(paper_pk("2611.40003"))).get_by_text("You said").count() == 0
        visit.snap("rate-after-undo")
    finally:
        visit.close()


def paper_pk(arxiv_id: str) -> int:
    from newsletter.models import Paper

    return Paper.objects.get(arxiv_id=arxiv_id).pk


def visit_path(visit, step):
    from .test_browser_flow import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{visit.device['name']}-feedback-{step}.png"
