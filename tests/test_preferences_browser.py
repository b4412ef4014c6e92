"""The preferences page's "What you want to read" and "Your data" in a real browser (Debian's
Chromium through Playwright, as tests/test_browser_flow.py drives it), on a desktop window
with JavaScript on and on a 390 px phone in dark mode with JavaScript off: a wrong seed paper
keeps what was typed, then an author, a seed paper and the reader's own words are saved; a
like is undone; the data is downloaded; the person is erased. A real Celery worker takes the
retraining each change queues. Screenshots land in tests/artifacts/screenshots/ (look at them
after a change to the templates), and the downloaded file is opened in the browser too."""

import json

import pytest

from newsletter.models import FollowedAuthor, Paper, SeedPaper, Vote
from subscriptions.models import ConsentEvent, Erasure, Subscriber

from .helpers import make_subscriber, preferences_path
from .test_browser_flow import DESKTOP, PHONE, SCREENSHOTS, Visit, chromium  # noqa: F401  (chromium: the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=lambda d: d["name"])
def test_tell_it_more_then_download_and_delete(device, chromium, live_server, celery_worker, topics):  # noqa: F811
    device = {**device, "name": f"reading-{device['name']}"}
    reader = make_subscriber(f"{device['name']}@example.org", topics=[topics["agents"], topics["code"]])
    Paper.objects.create(arxiv_id="2401.00100", title="World models for agents that plan",
                         authors=["Yann LeCun", "Someone Else"])
    seeded = Paper.objects.create(arxiv_id="2401.00101", title="Small models that write large programs",
                                  authors=["Ada Lovelace"])
    liked = Paper.objects.create(arxiv_id="2401.00102", title="A benchmark for tool use in the wild")
    Vote.objects.create(subscriber=reader, paper=liked, value=Vote.MORE)

    visit = Visit(chromium, live_server.url, device)
    page = visit.page
    try:
        page.goto(preferences_path(reader))
        page.get_by_role("heading", name="What you want to read").wait_for()
        assert page.get_by_role("link", name="A benchmark for tool use in the wild").is_visible()
        visit.snap("preferences")

        # A wrong seed paper: a clear error, and nothing typed is lost.
        words = "Efficient inference on small GPUs, and agents that write and test code."
        page.get_by_label("What I want to read about").fill(words)
        page.get_by_label("Follow an author").fill("yann lecun")
        page.get_by_label("Add a paper you liked").fill("not a paper")
        page.get_by_label("Also show one paper from outside my topics").check()
        page.get_by_role("button", name="Save what I want to read").click()
        page.get_by_text("That is not a paper we can look up.").wait_for()
        assert page.get_by_label("What I want to read about").input_value() == words
        assert page.get_by_label("Follow an author").input_value() == "yann lecun"
        assert page.get_by_label("Add a paper you liked").input_value() == "not a paper"
        assert page.get_by_label("Also show one paper from outside my topics").is_checked()
        assert page.get_by_label("Add a paper you liked").get_attribute("aria-invalid") == "true"
        assert not FollowedAuthor.objects.exists() and not reader.consent_events.exists()
        visit.snap("seed-error")

        page.get_by_label("Add a paper you liked").fill("https://huggingface.co/papers/2401.00101")
        page.get_by_role("button", name="Save what I want to read").click()
        page.get_by_text("You now follow yann lecun.").wait_for()
        assert page.get_by_text("Added the seed paper 2401.00101.").is_visible()
        page.get_by_text("1 paper in the archive").click()  # opens the <details>, no script needed
        assert page.get_by_role("link", name="World models for agents that plan").is_visible()
        assert page.get_by_role("link", name="Small models that write large programs").is_visible()
        assert page.get_by_label("What I want to read about").input_value() == words
        visit.snap("saved")
        reader.refresh_from_db()
        assert (reader.interests, reader.outside_topics) == (words, True)
        assert FollowedAuthor.objects.get(subscriber=reader).key == "yann lecun"
        assert SeedPaper.objects.get(subscriber=reader).paper == seeded
        [event] = reader.consent_events.all()
        assert set(event.details["changes"]) == {"followed_authors", "seed_papers", "interests", "outside_topics"}
        assert "Chrome" in event.user_agent

        # Undo a like, remove the author: buttons that POST.
        page.get_by_role("button", name="Undo like: A benchmark for tool use in the wild").click()
        page.get_by_text("You no longer like “A benchmark for tool use in the wild”.").wait_for()
        assert not Vote.objects.filter(subscriber=reader).exists()
        page.get_by_role("button", name="Remove yann lecun").click()
        page.get_by_text("You no longer follow yann lecun.").wait_for()
        assert not FollowedAuthor.objects.filter(subscriber=reader).exists()
        visit.snap("removed")

        # Download my data: a JSON file; then the file itself, as a browser shows it.
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download my data").click()
        download = download_info.value
        assert download.suggested_filename.startswith("my-data-") and download.suggested_filename.endswith(".json")
        saved = SCREENSHOTS / f"{device['name']}-my-data.json"
        download.save_as(saved)
        data = json.loads(saved.read_text())
        assert data["subscriber"]["email"] == reader.email
        assert data["feedback"]["interests"] == words
        assert data["feedback"]["seed_papers"][0]["title"] == "Small models that write large programs"
        assert [e["kind"] for e in data["consent_log"]][-1] == ConsentEvent.Kind.EXPORT
        downloaded = visit.context.new_page()
        downloaded.goto(saved.as_uri())
        visit.shots.append(SCREENSHOTS / f"{device['name']}-{len(visit.shots) + 1:02d}-downloaded.png")
        downloaded.screenshot(path=str(visit.shots[-1]), full_page=True)
        downloaded.close()

        # Delete my data: a page that asks, then one confirming POST.
        page.get_by_role("link", name="Delete my data").click()
        page.get_by_role("heading", name="Delete my data").wait_for()
        assert Subscriber.objects.filter(pk=reader.pk).exists()
        visit.snap("delete-confirm")
        page.get_by_role("button", name="Yes, erase everything").click()
        page.get_by_role("heading", name="Your data is deleted").wait_for()
        visit.snap("deleted")
        assert not Subscriber.objects.filter(pk=reader.pk).exists()
        assert not ConsentEvent.objects.filter(subscriber_id=reader.pk).exists()
        erasure = Erasure.objects.get()
        assert erasure.origin == "preferences page" and reader.email not in json.dumps(erasure.removed)

        page.goto(preferences_path(reader))
        page.get_by_role("heading", name="This link is not valid").wait_for()
    finally:
        visit.close()
    assert all(p.stat().st_size > 5_000 for p in visit.shots)
