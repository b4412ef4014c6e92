"""The preferences page's "What you want to read" (issue 11, "Telling it more"): the papers a
reader liked (with an undo that POSTs), authors to follow, seed papers by arXiv id or link,
their own words and the opt-in paper from outside their topics. Driven through the Django
test client against PostgreSQL: each input and its errors, the limits, the consent log, and
the effect on the reader's model (the profile becomes stale and a retraining is queued on
the real Redis broker)."""

import base64
import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from newsletter.author_papers import keys_of
from newsletter.celery import app as celery_app
from newsletter.models import FollowedAuthor, Paper, ReaderProfile, SeedPaper, Vote
from newsletter.personal.authors import author_key
from subscriptions import tokens
from subscriptions.models import ConsentEvent

from .helpers import make_subscriber, preferences_path
from .support.hostile_cases import XSS, has_raw_markup
from .support.seeding import seed_scrape

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(topics):
    return make_subscriber("alice@example.org", topics=[topics["agents"]])


@pytest.fixture
def bob(topics):
    return make_subscriber("bob@example.org", topics=[topics["code"]])


@pytest.fixture
def trained(alice):
    """Alice's model, trained after her last signal (fresh)."""
    now = timezone.now()
    return ReaderProfile.objects.create(subscriber=alice, signal_at=now - timedelta(hours=2), trained_at=now - timedelta(hours=1))


def stale(profile) -> bool:
    profile.refresh_from_db()
    return profile.trained_at is None or profile.trained_at < profile.signal_at


def paper(arxiv_id, title="A paper", authors=(), **fields):
    return Paper.objects.create(arxiv_id=arxiv_id, title=title, authors=list(authors), **fields)


def reading(client, subscriber, **fields):
    """POST the "What you want to read" form as a browser would: every field, as shown."""
    data = {"action": "reading", "interests": subscriber.interests, "follow_author": "", "seed_paper": ""}
    if subscriber.outside_topics:
        data["outside_topics"] = "on"
    data.update(fields)
    return client.post(preferences_path(subscriber), {k: v for k, v in data.items() if v is not None})


def preference_changes(subscriber) -> list[dict]:
    return [e.details["changes"] for e in subscriber.consent_events.filter(kind=ConsentEvent.Kind.PREFERENCES).order_by("id")]


def outside_topics_ticked(html: str) -> bool:
    [checkbox] = re.findall(r'<input type="checkbox" name="outside_topics"[^>]*>', html)
    return " checked" in checkbox


def page_of(client, subscriber) -> str:
    response = client.get(preferences_path(subscriber))
    assert response.status_code == 200
    return response.content.decode()


# --- Papers you liked ----------------------------------------------------------------------

def test_liked_papers_newest_first_linked_to_their_pages_and_undone_by_a_post(client, alice, bob, trained):
    older, newer, disliked = paper("2401.00001", "Older liked"), paper("2401.00002", "Newer liked"), paper("2401.00003", "Not for me")
    Vote.objects.create(subscriber=alice, paper=older, value=Vote.MORE)
    Vote.objects.create(subscriber=alice, paper=newer, value=Vote.MORE)
    Vote.objects.create(subscriber=alice, paper=disliked, value=Vote.LESS)
    bobs = Vote.objects.create(subscriber=bob, paper=older, value=Vote.MORE)

    html = page_of(client, alice)
    assert html.index("Newer liked") < html.index("Older liked")
    assert "Not for me" not in html  # a "Less like this" is no like
    assert 'href="https://huggingface.co/papers/2401.00002"' in html
    assert html.count(">Undo like</button>") == 2

    # A GET (a link scanner) changes nothing; the undo is a POST.
    assert Vote.objects.filter(subscriber=alice).count() == 3 and not stale(trained)
    response = client.post(preferences_path(alice), {"action": "unlike", "paper": str(newer.pk)})
    assert response.status_code == 302 and response["Location"].endswith("#reading")
    assert not Vote.objects.filter(subscriber=alice, paper=newer).exists()
    assert preference_changes(alice) == [{"liked_papers": {"removed": ["2401.00002"]}}]
    assert stale(trained)
    assert "You no longer like “Newer liked”." in page_of(client, alice)

    # Neither a "Less" vote nor someone else's like can be undone from here.
    for target in (disliked, older):
        client.post(preferences_path(alice), {"action": "unlike", "paper": str(target.pk)})
    assert Vote.objects.filter(subscriber=alice, paper=disliked).exists()
    assert not Vote.objects.filter(subscriber=alice, paper=older).exists()  # her own like: gone
    assert Vote.objects.filter(pk=bobs.pk).exists()
    client.post(preferences_path(bob), {"action": "unlike", "paper": "not-a-number"})
    assert Vote.objects.filter(pk=bobs.pk).exists()


def test_liked_titles_are_escaped(client, alice):
    Vote.objects.create(subscriber=alice, paper=paper("2401.00004", f"Tricky {XSS}"), value=Vote.MORE)
    html = page_of(client, alice)
    assert "Tricky" in html and not has_raw_markup(html)


# --- Authors to follow ---------------------------------------------------------------------

def test_follow_an_author_matched_against_stored_author_lists(client, alice, trained):
    paper("2401.00010", "Old LSTM paper", ["Jürgen Schmidhuber", "Sepp Hochreiter"], first_seen_at=timezone.now() - timedelta(days=9))
    paper("2401.00011", "New world models", ["Someone Else", "JURGEN SCHMIDHUBER"])
    paper("2401.00012", "Unrelated", ["Jürgen Schmid"])

    response = reading(client, alice, follow_author="  jurgen   schmidhuber ")
    assert response.status_code == 302
    follow = FollowedAuthor.objects.get(subscriber=alice)
    assert (follow.name, follow.key) == ("jurgen schmidhuber", "jurgen schmidhuber")
    assert preference_changes(alice) == [{"followed_authors": {"added": ["jurgen schmidhuber"]}}]
    assert stale(trained)

    html = page_of(client, alice)
    assert "You now follow jurgen schmidhuber." in html
    assert "2 papers in the archive" in html
    assert html.index("New world models") < html.index("Old LSTM paper")  # newest first
    assert "Unrelated" not in html

    # The same author again, however spelt: nothing new.
    reading(client, alice, follow_author="Jürgen Schmidhuber.")
    assert FollowedAuthor.objects.filter(subscriber=alice).count() == 1
    assert "You already follow Jürgen Schmidhuber." in page_of(client, alice)
    assert len(preference_changes(alice)) == 1


def test_an_author_not_in_the_archive_yet_can_be_followed_and_removed(client, alice, bob, trained):
    reading(client, alice, follow_author="Ada Lovelace")
    follow = FollowedAuthor.objects.get(subscriber=alice)
    assert "No paper in the archive yet" in page_of(client, alice)
    bobs = FollowedAuthor.objects.create(subscriber=bob, name="Grace Hopper")

    # Alice's link cannot remove Bob's follow.
    client.post(preferences_path(alice), {"action": "unfollow", "author": str(bobs.pk)})
    assert FollowedAuthor.objects.filter(pk=bobs.pk).exists()

    trained.trained_at = timezone.now()  # trained since the follow
    trained.save()
    response = client.post(preferences_path(alice), {"action": "unfollow", "author": str(follow.pk)})
    assert response.status_code == 302
    assert not FollowedAuthor.objects.filter(subscriber=alice).exists()
    assert preference_changes(alice)[-1] == {"followed_authors": {"removed": ["Ada Lovelace"]}}
    assert stale(trained)
    assert "You no longer follow Ada Lovelace." in page_of(client, alice)


def test_a_newly_stored_paper_counts_at_the_next_look(client, alice):
    paper("2401.00013", "First", ["Grace Hopper"], last_seen_at=timezone.now() - timedelta(days=3))
    reading(client, alice, follow_author="Grace Hopper")
    assert "1 paper in the archive" in page_of(client, alice)
    paper("2401.00014", "Second", ["GRACE HOPPER", "Alan Turing"])  # a later scrape
    html = page_of(client, alice)
    assert "2 papers in the archive" in html and html.index("Second") < html.index("First")


@pytest.mark.parametrize("names", [
    ["Jürgen  Schmidhuber.", "  O'Neil, Cathy "], ["Ǆemal Ǉubić", "ﬁsh ﬂow"], ["Straße Groß", "李 飞飞"], ["a_b-c", "", "!!!"],
    ["x" * 300, "José\u0301 Ñu", "line\nbreak"], [],
])
def test_author_lists_fold_as_author_key_does(names):
    assert keys_of(names) == {author_key(n) for n in names} - {""}


@pytest.mark.parametrize("name", ["{{unsubscribe_url}}", "%recipient.unsubscribe_url%", "-unsubscribe_url-", "a_b", "!!!", "LeCun, Yann", XSS])
def test_names_that_are_no_names_are_refused(client, alice, name):
    response = reading(client, alice, follow_author=name, interests="robot hands")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Please type one author&#x27;s name as papers list it" in html
    assert "robot hands" in html  # what else was typed is still there
    assert not has_raw_markup(html)
    assert not FollowedAuthor.objects.exists() and not alice.consent_events.exists()


# --- Seed papers ---------------------------------------------------------------------------

@pytest.mark.parametrize("typed", [
    "2401.12345", "2401.12345v2", "arXiv:2401.12345", "ARXIV: 2401.12345v11", " https://arxiv.org/abs/2401.12345 ",
    "http://arxiv.org/abs/2401.12345v3", "https://www.arxiv.org/pdf/2401.12345v1.pdf", "arxiv.org/abs/2401.12345",
    "https://huggingface.co/papers/2401.12345", "https://huggingface.co/papers/2401.12345#community",
    "https://huggingface.co/papers/2401.12345?utm=x",
])
def test_seed_papers_by_id_or_link(client, alice, typed):
    response = reading(client, alice, seed_paper=typed)
    assert response.status_code == 302, response.content.decode()[:2000]
    seed = SeedPaper.objects.get(subscriber=alice)
    assert (seed.arxiv_id, seed.paper) == ("2401.12345", None)
    assert preference_changes(alice) == [{"seed_papers": {"added": ["2401.12345"]}}]


@pytest.mark.parametrize("typed", [
    "hello", "2401.123", "2401.123456", "2413.12345", "2401.1234", "1412.12345", "cs/0112017",
    "https://evil.example/abs/2401.12345", "https://arxiv.org.evil.example/abs/2401.12345",
    "https://user@arxiv.org/abs/2401.12345", "https://arxiv.org:8443/abs/2401.12345",
    "https://arxiv.org/list/2401.12345", "https://huggingface.co/papers/2401.12345/../../x",
    "javascript:alert(1)//2401.12345", "ftp://arxiv.org/abs/2401.12345", "2401.12345 2402.12345", XSS,
])
def test_anything_else_is_refused_with_a_clear_error_and_nothing_typed_is_lost(client, alice, typed):
    response = reading(client, alice, seed_paper=typed, follow_author="Yann LeCun", interests="sparse attention", outside_topics="on")
    assert response.status_code == 400
    html = response.content.decode()
    assert "That is not a paper we can look up." in html and "2401.12345 (or arXiv:2401.12345)" in html
    assert "Nothing was saved yet" in html
    # Everything typed is shown again as typed; nothing was stored.
    assert 'value="Yann LeCun"' in html and "sparse attention</textarea>" in html
    assert outside_topics_ticked(html)
    assert not has_raw_markup(html)
    alice.refresh_from_db()
    assert (alice.interests, alice.outside_topics) == ("", False)
    assert not SeedPaper.objects.exists() and not FollowedAuthor.objects.exists() and not alice.consent_events.exists()


def test_a_stored_paper_links_at_once_and_shows_its_title(client, alice):
    stored = paper("2401.00020", "Seeded and stored")
    reading(client, alice, seed_paper="https://huggingface.co/papers/2401.00020")
    assert SeedPaper.objects.get(subscriber=alice).paper == stored
    html = page_of(client, alice)
    assert "Added the seed paper 2401.00020." in html
    assert 'href="https://huggingface.co/papers/2401.00020">Seeded and stored</a>' in html


def test_a_seed_named_before_its_paper_is_stored_links_when_a_scrape_stores_it(client, alice, bob, trained):
    reading(client, alice, seed_paper="2608.13120")  # on the sample trending page, not stored yet
    reading(client, bob, seed_paper="arXiv:2608.13120v2")
    reading(client, alice, seed_paper="2401.99999")  # never scraped
    assert "Not in our archive yet" in page_of(client, alice)
    trained.trained_at = timezone.now()  # trained since those seeds
    trained.save()

    seed_scrape()  # the real parse and store step

    stored = Paper.objects.get(arxiv_id="2608.13120")
    assert set(SeedPaper.objects.filter(arxiv_id="2608.13120").values_list("paper", flat=True)) == {stored.pk}
    assert SeedPaper.objects.get(arxiv_id="2401.99999").paper is None
    assert stale(trained)  # Alice's model learns from the seed now
    assert stored.title in page_of(client, alice)


def test_removing_a_seed(client, alice, bob):
    reading(client, alice, seed_paper="2401.00030")
    seed = SeedPaper.objects.get(subscriber=alice)
    bobs = SeedPaper.objects.create(subscriber=bob, arxiv_id="2401.00031")
    client.post(preferences_path(alice), {"action": "remove-seed", "seed": str(bobs.pk)})
    assert SeedPaper.objects.filter(pk=bobs.pk).exists()
    client.post(preferences_path(alice), {"action": "remove-seed", "seed": str(seed.pk)})
    assert not SeedPaper.objects.filter(subscriber=alice).exists()
    assert preference_changes(alice)[-1] == {"seed_papers": {"removed": ["2401.00030"]}}


# --- Own words and the outside-topics slot --------------------------------------------------

def test_what_i_want_to_read_about(client, alice, trained):
    text = "Efficient inference on small GPUs.\r\n\r\nAgents that write code."
    assert reading(client, alice, interests=text).status_code == 302
    alice.refresh_from_db()
    assert alice.interests == "Efficient inference on small GPUs.\n\nAgents that write code."
    assert preference_changes(alice) == [{"interests": {"from": "", "to": alice.interests}}]
    assert stale(trained)
    assert "Saved what you want to read about." in page_of(client, alice)

    # Sent again as the browser shows it (CRLF): no change, nothing logged.
    reading(client, alice, interests=text)
    assert len(preference_changes(alice)) == 1


def test_own_words_have_a_limit(client, alice):
    at_limit = "x" * 2000
    assert reading(client, alice, interests=at_limit).status_code == 302
    response = reading(client, alice, interests="y" * 2001, follow_author="Yann LeCun")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Please keep it to 2,000 characters (this has 2001)." in html and 'value="Yann LeCun"' in html
    alice.refresh_from_db()
    assert alice.interests == at_limit and not FollowedAuthor.objects.exists()
    assert 'maxlength="2000"' in html


def test_the_outside_topics_slot_is_opt_in_and_explained(client, alice, trained):
    html = page_of(client, alice)
    assert "Also show one paper from outside my topics" in html and "marked “Outside your topics”" in html
    assert not outside_topics_ticked(html)
    reading(client, alice, outside_topics="on")
    alice.refresh_from_db()
    assert alice.outside_topics
    reading(client, alice, outside_topics=None)
    alice.refresh_from_db()
    assert not alice.outside_topics
    assert preference_changes(alice) == [{"outside_topics": {"from": False, "to": True}}, {"outside_topics": {"from": True, "to": False}}]
    assert stale(trained)


def test_nothing_changed_logs_nothing_and_leaves_the_model_fresh(client, alice, trained):
    response = reading(client, alice)
    assert response.status_code == 302
    assert "Nothing changed." in page_of(client, alice)
    assert not alice.consent_events.exists() and not stale(trained)


def test_one_save_changes_several_things_in_one_logged_event(client, alice, trained):
    reading(client, alice, interests="diffusion for video", follow_author="Yann LeCun", seed_paper="2401.00040", outside_topics="on")
    [changes] = preference_changes(alice)
    assert changes == {
        "followed_authors": {"added": ["Yann LeCun"]},
        "seed_papers": {"added": ["2401.00040"]},
        "interests": {"from": "", "to": "diffusion for video"},
        "outside_topics": {"from": False, "to": True},
    }
    event = alice.consent_events.get()
    assert event.ip_address == "127.0.0.1"
    assert stale(trained)


def test_a_change_queues_the_retraining_on_the_broker(client, alice, redis_clean, django_capture_on_commit_callbacks):
    celery_app.conf.task_always_eager = False  # publish to the real Redis broker (reset after the test)
    with django_capture_on_commit_callbacks(execute=True):
        reading(client, alice, follow_author="Yann LeCun")
    queued = [json.loads(raw) for raw in redis_clean.lrange("celery", 0, -1)]
    tasks = [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in queued]
    assert ("newsletter.tasks.personal.retrain_readers", [[alice.pk]]) in tasks


# --- Limits and abuse ----------------------------------------------------------------------

def test_at_most_so_many_authors_and_seed_papers(client, alice, settings):
    settings.READER_MAX_FOLLOWED_AUTHORS = settings.READER_MAX_SEED_PAPERS = 3
    for n in range(3):
        FollowedAuthor.objects.create(subscriber=alice, name=f"Author {n}")
        SeedPaper.objects.create(subscriber=alice, arxiv_id=f"2401.0005{n}")
    response = reading(client, alice, follow_author="One Too Many", interests="kept on the page")
    assert response.status_code == 400
    html = response.content.decode()
    assert "You follow 3 authors, the most we keep. Remove one to follow another." in html and "kept on the page</textarea>" in html
    response = reading(client, alice, seed_paper="2401.00059", interests="kept on the page")
    assert "You have 3 seed papers, the most we keep. Remove one to add another." in response.content.decode()
    alice.refresh_from_db()
    assert alice.interests == ""  # all or nothing
    assert alice.followed_authors.count() == 3 and alice.seed_papers.count() == 3
    assert not alice.consent_events.exists()
    # One already followed is not one more.
    assert reading(client, alice, follow_author="author 0", seed_paper="2401.00050v3").status_code == 302


def test_the_default_limits_are_fifty(client, alice):
    FollowedAuthor.objects.bulk_create([FollowedAuthor(subscriber=alice, name=f"Author {n}", key=f"author {n}") for n in range(50)])
    SeedPaper.objects.bulk_create([SeedPaper(subscriber=alice, arxiv_id=f"2401.{n:05d}") for n in range(50)])
    assert reading(client, alice, follow_author="Number Fiftyone").status_code == 400
    assert reading(client, alice, seed_paper="2402.00001").status_code == 400
    assert alice.followed_authors.count() == 50 and alice.seed_papers.count() == 50
    html = page_of(client, alice)
    assert "You follow 50 of at most 50 authors" in html and "(50 of at most 50)" in html


def test_changes_are_rate_limited_per_reader(client, alice, bob, settings):
    settings.READER_CHANGES_RATE_LIMIT = "3/h"
    cache.clear()
    for n in range(3):
        assert reading(client, alice, follow_author=f"Author {'abc'[n]}").status_code == 302
    response = reading(client, alice, follow_author="Author d")
    assert response.status_code == 429 and "Too many changes" in response.content.decode()
    assert alice.followed_authors.count() == 3
    assert reading(client, bob, follow_author="Author d").status_code == 302  # per reader, not per IP
    # Someone who only knows Alice's id cannot spend her allowance with a forged link.
    settings.READER_CHANGES_RATE_LIMIT = "4/h"
    for _ in range(5):
        client.post(f"/preferences/{alice.pk}.forged/", {"action": "reading", "follow_author": "X"})
    assert reading(client, alice, follow_author="Author e").status_code == 302


def test_the_link_is_the_credential_for_every_new_action(client, alice, bob):
    follow = FollowedAuthor.objects.create(subscriber=alice, name="Ada Lovelace")
    token = preferences_path(alice).split("/")[2]
    revoked = preferences_path(alice)
    alice.revoke_links()
    unsubscribe_token = tokens.make_token(alice, tokens.UNSUBSCRIBE)
    posts = [
        {"action": "reading", "follow_author": "Grace Hopper", "interests": "x"},
        {"action": "unfollow", "author": str(follow.pk)},
        {"action": "remove-seed", "seed": "1"},
        {"action": "unlike", "paper": "1"},
    ]
    for path in (revoked, f"/preferences/{token[:-2]}/", f"/preferences/{bob.pk}.{token.partition('.')[2]}/",
                 f"/preferences/{unsubscribe_token}/"):
        for data in posts:
            assert client.post(path, data).status_code == 400, (path, data)
    assert list(alice.followed_authors.values_list("name", flat=True)) == ["Ada Lovelace"]
    assert not ConsentEvent.objects.exists()


def test_every_new_form_needs_the_csrf_token(alice):
    browser = Client(enforce_csrf_checks=True)
    path = preferences_path(alice)
    assert browser.get(path).status_code == 200
    for data in ({"action": "reading", "follow_author": "Grace Hopper"}, {"action": "unlike", "paper": "1"}):
        assert browser.post(path, data).status_code == 403
    assert not alice.followed_authors.exists()


def test_the_page_keeps_working_for_unsubscribed_readers(client, alice):
    alice.status = alice.Status.UNSUBSCRIBED
    alice.save()
    assert reading(client, alice, follow_author="Grace Hopper").status_code == 302
    assert "Grace Hopper" in page_of(client, alice)
