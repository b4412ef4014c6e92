"""Issue 12, the paper in the email and the subject line: each paper shows its trending rank
and the change since yesterday, its published date, PDF and project-page links, organisation,
GitHub stars, an https thumbnail with width, height and alt text, and the AI summary with a
"Read the abstract" link; the subject is "4 new in LLM reasoning, Agents · 30 Nov", at most 70
characters. Then the digest in a real browser (Debian's Chromium through Playwright) with
images on and off, light and dark, at 600 and 390 px: screenshots in
tests/artifacts/screenshots/digest-*.png."""

import json
import re
import struct
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail

from newsletter.digests.rendering import SUBJECT_CHARS, subject_for
from newsletter.models import Delivery, Paper, ScrapeRun
from newsletter.scraping.run import scrape_file
from newsletter.tasks.digests import dispatch_now
from subscriptions.models import Topic

from .helpers import make_subscriber
from .test_browser_flow import chromium  # noqa: F401  (fixture)
from .test_digest_pages import parsed

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "hf" / "api_daily_papers_2026-05-08.json"
# Yesterday's page: the first paper of today's was not on it, the next four in reverse order.
YESTERDAY = [*range(5, 37), 4, 3, 2, 1]


@pytest.fixture
def two_days(tmp_path, topics):
    """Yesterday's and today's scrapes of a real Hugging Face papers page, through the real
    parser and topic model: (today's items by arXiv id, yesterday's ranks by arXiv id)."""
    items = json.loads(FIXTURE.read_text())
    yesterday_path = tmp_path / "yesterday.json"
    yesterday_path.write_text(json.dumps([items[i] for i in YESTERDAY]))
    yesterday = scrape_file(yesterday_path)
    assert yesterday.status == ScrapeRun.Status.OK, yesterday.error
    ScrapeRun.objects.filter(pk=yesterday.pk).update(started_at=yesterday.started_at - timedelta(days=1),
                                                     finished_at=yesterday.finished_at - timedelta(days=1))
    today = scrape_file(FIXTURE)
    assert today.status == ScrapeRun.Status.OK, today.error
    today_items = {item["paper"]["id"]: (rank, item) for rank, item in enumerate(items, start=1)}
    yesterday_ranks = {items[i]["paper"]["id"]: rank for rank, i in enumerate(YESTERDAY, start=1)}
    return today_items, yesterday_ranks


def digest_for(reader):
    dispatch_now(ignore_hour=True)
    [message] = [m for m in mail.outbox if m.to == [reader.email]]
    body = parsed(message)
    return message, body.get_body(preferencelist=("html",)).get_content(), body.get_body(preferencelist=("plain",)).get_content()


def blocks_of(text: str) -> dict[str, str]:
    """arXiv id -> its paper's block in the plain-text part."""
    blocks = re.split(r"\n(?=\d+\. )", text.split("\n\n", 1)[1].split("\n--\n")[0])
    found = {}
    for block in blocks:
        [arxiv_id] = re.findall(r"^arXiv: https://arxiv\.org/abs/(\S+)$", block, re.MULTILINE)
        found[arxiv_id] = block
    return found


def expected_rank_line(arxiv_id, two_days) -> str:
    today, yesterday = two_days
    rank = today[arxiv_id][0]
    if arxiv_id not in yesterday:
        return f"#{rank} trending · new today"
    change = yesterday[arxiv_id] - rank
    if change == 0:
        return f"#{rank} trending · same as yesterday"
    return f"#{rank} trending · {'up' if change > 0 else 'down'} {abs(change)} since yesterday"


def test_each_paper_shows_its_rank_and_change_date_links_organisation_stars_and_ai_summary(two_days, topics):
    reader = make_subscriber("look@example.org", topics=list(Topic.objects.all()), papers_per_email=10)
    _, html, text = digest_for(reader)
    blocks = blocks_of(text)
    assert len(blocks) == 10
    today, _ = two_days
    lines = set()
    for arxiv_id, block in blocks.items():
        _, item = today[arxiv_id]
        paper = item["paper"]
        rank_line = expected_rank_line(arxiv_id, two_days)
        lines.add(rank_line.split(" · ")[1].split()[0])
        assert block.split("\n")[0].split(". ", 1)[1] == rank_line
        published = Paper.objects.get(arxiv_id=arxiv_id).published_at
        assert f"Published {published.day} {published:%b %Y}" in block
        assert f"PDF: https://arxiv.org/pdf/{arxiv_id}\n" in block
        stored = Paper.objects.get(arxiv_id=arxiv_id)
        assert (f"Project page: {stored.project_page}\n" in block) == bool(stored.project_page)
        organisation = (item.get("organization") or {}).get("fullname")
        if organisation:
            assert f" · {organisation}\n" in block
        if paper.get("githubRepo") and paper.get("githubStars") is not None:
            assert f"{paper['githubStars']:,} GitHub stars" in block
        if paper.get("ai_summary"):
            assert "AI summary: " in block and f"Read the abstract: https://huggingface.co/papers/{arxiv_id}\n" in block
        else:
            assert "Read the abstract" not in block
        # The HTML part: the same, and the thumbnail sized, described, https only.
        [card] = re.findall(r'<table[^>]*class="paper".*?</table>', html.split(f"https://arxiv.org/abs/{arxiv_id}")[0][-20000:] + "</table>", re.S)[-1:]
        assert rank_line in card
        [image] = re.findall(r"<img [^>]*>", card)
        assert f'src="{item["thumbnail"]}"' in image and item["thumbnail"].startswith("https://")
        assert 'width="552"' in image and 'height="290"' in image and 'alt="Thumbnail: ' in image
    # The page held papers new today, some that rose and some that fell: all three were shown.
    assert lines == {"new", "up", "down"}, lines
    assert "Project page: https://" in text and "GitHub stars" in text and "AI summary: " in text


def test_the_subject_names_the_count_and_the_readers_topics_in_at_most_70_characters(two_days, topics):
    agents, reasoning = topics["agents"], Topic.objects.get(slug="llm-reasoning")
    reader = make_subscriber("subject@example.org", topics=[agents, reasoning], papers_per_email=6)
    message, _, text = digest_for(reader)
    subject = parsed(message)["Subject"]
    day = Delivery.objects.get(subscriber=reader).digest_date
    count = len(blocks_of(text))
    shown = re.findall(r"^Why: ([^:]+):", text, re.MULTILINE)
    assert set(shown) <= {agents.name, reasoning.name}
    most = max(set(shown), key=shown.count)
    assert subject.startswith(f"{count} new in {most}")
    assert subject.endswith(f" · {day.day} {day:%b}") and len(subject) <= SUBJECT_CHARS


@pytest.mark.parametrize("address", ["plain@example.org", "reader@bücher.example"])
def test_over_smtp_a_long_subject_reads_back_exactly_on_both_paths(address, two_days, topics, smtp_settings):
    """A plain address takes the prebuilt path; an IDN one the ordinary EmailMessage path."""
    reader = make_subscriber(address, topics=[topics["agents"], Topic.objects.get(slug="llm-reasoning"), topics["code"]])
    dispatch_now(ignore_hour=True)
    [received] = smtp_settings.wait_for(1)
    subject, raw = received["message"]["Subject"], received["message"].as_string()
    day = Delivery.objects.get(subscriber=reader).digest_date
    assert re.fullmatch(rf"\d+ new in [^ ].* · {day.day} {day:%b}", subject), subject
    assert re.search(r"^Subject: =\?utf-8\?", raw, re.MULTILINE)  # encoded words start on the Subject line


@pytest.mark.parametrize("kind", ["daily", "weekly"])
def test_long_topic_names_still_fit_the_subject(kind):
    names = ("Efficient training and inference", "Continual and self-improving learning", "Image generation and editing")
    subject = subject_for(kind, names, 12) + " · 30 Sep"
    assert len(subject) <= SUBJECT_CHARS, subject
    assert subject.startswith("12 new in Efficient training and inference" if kind == "daily" else "12 this week in Efficient")
    assert "+2 more" in subject or "+1 more" in subject
    very_long = ("A" * 200,)
    assert len(subject_for(kind, very_long, 3) + " · 30 Sep") <= SUBJECT_CHARS
    assert subject_for(kind, (), 2) in ("2 papers trending today", "2 papers this week")


@pytest.mark.parametrize("thumbnail", ["http://cdn.example.org/t.png", "javascript:alert(1)", "//cdn.example.org/t.png", ""])
def test_a_thumbnail_that_is_not_plain_https_is_left_out(thumbnail, topics, make_scrape):
    make_scrape([dict(arxiv_id="2611.50001", title="Paper", abstract="Body.", upvotes=3, thumbnail=thumbnail,
                      topics={"agents": 5.0})])
    reader = make_subscriber("thumb@example.org", topics=[topics["agents"]])
    _, html, text = digest_for(reader)
    assert "<img" not in html and "Thumbnail" not in html and "Paper" in text


def solid_png(width: int, height: int) -> bytes:
    """A gradient PNG of that size (a stand-in thumbnail; no image library needed)."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // width, 80 + y * 100 // height, 170)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def thumbnails_only(image: bytes | None, served: list):
    """A route handler: the thumbnails get `image` (None: images blocked), everything else is
    refused, so nothing leaves the browser."""

    def answer(route):
        if image is not None and route.request.url.startswith("https://cdn-thumbnails.huggingface.co/"):
            served.append(route.request.url)
            return route.fulfill(body=image, content_type="image/png")
        return route.abort()

    return answer


THUMBNAILS = """() => [...document.querySelectorAll('img.thumb')].map(i => ({
  loaded: i.complete && i.naturalWidth > 0, width: i.getBoundingClientRect().width, alt: i.alt}))"""
CARD_BACKGROUND = "() => getComputedStyle(document.querySelector('.card')).backgroundColor"


@pytest.mark.browser
@pytest.mark.parametrize("width", [600, 390])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_digest_reads_with_images_on_and_off(width, scheme, two_days, topics, chromium):
    from .test_browser_flow import CONTRAST_FAILURES, OVERFLOWING_ELEMENTS, SCREENSHOTS, TEXT

    reader = make_subscriber(f"look-{width}-{scheme}@example.org", topics=list(Topic.objects.all()), papers_per_email=6)
    _, html, _ = digest_for(reader)
    thumbnail = solid_png(600, 324)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for images in (True, False):
        context = chromium.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme,
                                       java_script_enabled=False, is_mobile=width < 600)
        served = []
        context.route("**/*", thumbnails_only(thumbnail if images else None, served))
        page = context.new_page()
        try:
            page.set_content(html, wait_until="load")
            name = f"digest-{width}px-{scheme}-images-{'on' if images else 'off'}"
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
            shown = page.evaluate(THUMBNAILS)
            assert len(shown) == 6 and all(t["alt"].startswith("Thumbnail: ") for t in shown), shown
            assert all(t["loaded"] == images for t in shown), (name, shown)
            assert all(t["width"] <= min(width, 552) for t in shown), (name, shown)
            assert len(served) == (6 if images else 0)
            # Titles, rank lines and links read either way; nothing wider than the screen; text
            # at WCAG AA contrast in both colour schemes.
            assert page.locator("h2.paper-title").count() == 6 and all(t.is_visible() for t in page.locator("h2.paper-title").all())
            assert page.locator("p.rank").count() == 6 and page.get_by_role("link", name="Read the abstract").count() >= 1
            assert page.evaluate(OVERFLOWING_ELEMENTS) == [], name
            assert page.evaluate(CONTRAST_FAILURES, TEXT) == [], name
            dark_card = page.evaluate(CARD_BACKGROUND) == "rgb(28, 28, 31)"
            assert dark_card == (scheme == "dark"), name
        finally:
            context.close()
