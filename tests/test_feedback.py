"""Issue 11 #1: "More like this" / "Less like this" from the email, the vote pages, and the
"rate this digest" page. Real PostgreSQL; digests sent through the real sender (locmem)."""

import re

import pytest
from django.core import mail
from django.test import Client

from newsletter.feedback import tokens as feedback_tokens
from newsletter.models import Delivery, Vote
from newsletter.tasks.digests import dispatch_now
from subscriptions.models import ConsentEvent

from .helpers import LINK_RE, make_subscriber, path_of, personal_links
from .test_digest_pages import parsed

VOTE_LINK = re.compile(r'<a[^>]*href="([^"]+)"[^>]*>(More like this|Less like this)</a>')
TEXT_VOTE_LINK = re.compile(r"^(More like this|Less like this): (\S+)$", re.M)


def papers(count=4):
    return [
        dict(arxiv_id=f"2611.4000{n}", title=f"Paper number {n}", abstract="Body.", authors=[f"Author {n}"],
             upvotes=10 - n, topics={"agents": 5.0, "code": 4.0} if n % 2 else {"agents": 5.0})
        for n in range(1, count + 1)
    ]


@pytest.fixture
def received(topics, make_scrape):
    """A reader's sent digest: (subscriber, its email message, its html, its text)."""
    make_scrape(papers())
    reader = make_subscriber("reader@example.org", topics=[topics["agents"], topics["code"]])
    make_subscriber("other@example.org", topics=[topics["agents"]])
    dispatch_now(ignore_hour=True)
    [message] = [m for m in mail.outbox if m.to == [reader.email]]
    body = parsed(message)
    html = body.get_body(preferencelist=("html",)).get_content()
    text = body.get_body(preferencelist=("plain",)).get_content()
    return reader, message, html, text


def vote_links(html):
    return [(label, url.replace("&amp;", "&")) for url, label in VOTE_LINK.findall(html)]


def test_every_paper_carries_a_more_and_a_less_link_in_html_and_text(received):
    reader, _, html, text = received
    links = vote_links(html)
    assert [label for label, _ in links] == ["More like this", "Less like this"] * 4
    text_links = TEXT_VOTE_LINK.findall(text)
    assert [label for label, _ in text_links] == ["More like this", "Less like this"] * 4
    # The HTML and text parts carry the same links, one distinct token per paper.
    assert [url for _, url in links] == [url for _, url in text_links]
    tokens = {path_of(url).split("/")[2] for _, url in links}
    assert len(tokens) == 4
    delivery = Delivery.objects.get(subscriber=reader)
    for token in tokens:
        target = feedback_tokens.read(token)
        assert target.delivery == delivery and target.subscriber == reader


def test_following_a_link_records_nothing_until_the_button_is_pressed(received):
    reader, _, html, _ = received
    label, url = vote_links(html)[0]
    client = Client()
    page = client.get(path_of(url))
    assert page.status_code == 200 and Vote.objects.count() == 0
    body = page.content.decode()
    assert "Paper number 1" in body and '<button type="submit">More like this</button>' in body
    assert page["X-Robots-Tag"] == "noindex, nofollow" and page["Referrer-Policy"] == "no-referrer"

    answer = client.post(path_of(url))
    assert answer.status_code == 303
    vote = Vote.objects.get()
    assert (vote.subscriber, vote.paper.arxiv_id, vote.value, vote.delivery.subscriber) == (reader, "2611.40001", Vote.MORE, reader)
    rate = client.get(answer["Location"])
    assert rate.status_code == 200
    body = rate.content.decode()
    # The rest of the digest, each with its own pair, the vote given, and undo.
    assert body.count(">More like this</button>") == 4 and body.count(">Less like this</button>") == 4
    assert "You said: More like this" in body and body.count(">Undo</button>") == 1
    assert "Recorded “More like this” for “Paper number 1”." in body


def test_a_scanner_that_gets_every_link_in_a_digest_records_nothing(received):
    reader, _, html, text = received
    urls = {u.replace("&amp;", "&") for u in LINK_RE.findall(html) + LINK_RE.findall(text)}
    ours = [u for u in urls if u.startswith("http://testserver/")]
    assert len([u for u in ours if "/feedback/" in u]) == 8 and any("/unsubscribe/" in u for u in ours)
    events = ConsentEvent.objects.count()
    client = Client()
    for url in sorted(ours):
        response = client.get(path_of(url))
        assert response.status_code in (200, 302, 303), (url, response.status_code)
        if response.status_code in (302, 303):  # scanners follow redirects too
            assert client.get(response["Location"]).status_code == 200
        client.head(path_of(url))
    reader.refresh_from_db()
    assert Vote.objects.count() == 0
    assert ConsentEvent.objects.count() == events
    assert reader.status == reader.Status.ACTIVE and reader.topics.count() == 2


def test_rating_the_rest_of_the_digest_and_undo(received):
    reader, _, html, _ = received
    links = vote_links(html)
    client = Client()
    client.post(path_of(links[0][1]))  # More on paper 1
    rate_page = client.get(f"/feedback/{path_of(links[0][1]).split('/')[2]}/").content.decode()
    forms = re.findall(r'<form method="post" action="(/feedback/[^"]+/(?:more|less)/)">', rate_page)
    assert len(forms) == 8
    less_3 = [f for f in forms if f.endswith("/less/")][2]
    more_4 = [f for f in forms if f.endswith("/more/")][3]
    assert client.post(less_3).status_code == 303 and client.post(more_4).status_code == 303
    assert dict(Vote.objects.values_list("paper__arxiv_id", "value")) == {
        "2611.40001": 1, "2611.40003": -1, "2611.40004": 1}
    # A second vote on a paper replaces the first.
    client.post(less_3.replace("/less/", "/more/"))
    assert Vote.objects.get(paper__arxiv_id="2611.40003").value == Vote.MORE
    undo = less_3.replace("/less/", "/undo/")
    assert client.get(undo).status_code == 405  # undo is a POST too
    assert client.post(undo).status_code == 303
    assert set(Vote.objects.values_list("paper__arxiv_id", flat=True)) == {"2611.40001", "2611.40004"}


def test_tokens_for_another_subscriber_or_paper_are_refused(received, topics, settings):
    settings.FEEDBACK_BAD_TOKEN_RATE_LIMIT = "1000/m"  # every forgery below, from one address
    reader, _, html, _ = received
    token = path_of(vote_links(html)[0][1]).split("/")[2]
    target = feedback_tokens.read(token)
    other = make_subscriber("third@example.org", topics=[topics["agents"]])
    ids, signature = token.split(":")
    sid, did, pid = ids.split(".")
    other_paper = Delivery.objects.get(subscriber=reader).content.items.exclude(paper=target.paper).first().paper_id
    forged = [
        f"{other.pk}.{did}.{pid}:{signature}",  # another subscriber, same signature
        f"{sid}.{did}.{other_paper}:{signature}",  # another paper of the same digest
        f"{sid}.{int(did) + 1}.{pid}:{signature}",  # another delivery
        f"{sid}.{did}.{pid}:{signature[:-1]}A" if signature[-1] != "A" else f"{sid}.{did}.{pid}:{signature[:-1]}B",
        f"{sid}.{did}.{pid}",
        "²." + token,
        f"{sid}.{did}.{pid}:{signature}x",
    ]
    # A correctly signed token for a paper that was not in the reader's digest.
    foreign = Vote.objects.none()
    from newsletter.models import Paper

    not_sent = Paper.objects.exclude(digest_items__content=target.delivery.content).first()
    if not_sent is not None:
        forged.append(feedback_tokens.make(reader.pk, target.delivery.pk, not_sent.pk))
    # A token signed for the other reader's own digest, pointed at this reader's delivery.
    other_delivery = Delivery.objects.exclude(subscriber=reader).filter(content__isnull=False).first()
    forged.append(feedback_tokens.make(other_delivery.subscriber_id, target.delivery.pk, target.paper.pk))
    client = Client()
    for bad in forged:
        for path in (f"/feedback/{bad}/more/", f"/feedback/{bad}/"):
            assert client.get(path).status_code == 400, bad
        assert client.post(f"/feedback/{bad}/more/").status_code == 400, bad
        assert client.post(f"/feedback/{bad}/undo/").status_code == 400, bad
    assert not Vote.objects.exists() and not foreign


def test_vote_links_survive_link_revocation(received):
    reader, _, html, _ = received
    reader.revoke_links()
    url = vote_links(html)[1][1]  # Less on paper 1
    assert Client().post(path_of(url)).status_code == 303
    assert Vote.objects.get().value == Vote.LESS


def test_not_interested_in_a_topic_leaves_it_and_is_logged(received, topics):
    reader, _, html, _ = received
    url = vote_links(html)[1][1]  # Less on paper 1 (agents, code)
    client = Client()
    rate = client.get(client.post(path_of(url))["Location"]).content.decode()
    token = path_of(url).split("/")[2]
    assert "Not interested in Agents" in rate and "Not interested in Code" in rate
    answer = client.post(f"/feedback/{token}/not-interested/", {"topic": topics["code"].pk})
    assert answer.status_code == 303
    reader.refresh_from_db()
    assert list(reader.topics.values_list("slug", flat=True)) == ["agents"]
    event = ConsentEvent.objects.filter(subscriber=reader, kind=ConsentEvent.Kind.PREFERENCES).get()
    assert event.details["method"] == "not-interested link" and event.details["changes"]["topics"]["to"] == ["agents"]
    # The last topic is not taken away by this shortcut.
    client.post(f"/feedback/{token}/not-interested/", {"topic": topics["agents"].pk})
    assert reader.topics.count() == 1
    # A topic the paper is not in is refused.
    assert client.post(f"/feedback/{token}/not-interested/", {"topic": topics["robotics"].pk}).status_code == 400


def test_the_web_copy_carries_no_working_vote_link(received):
    _, message, _, text = received
    [view_url] = re.findall(r"View in browser: (\S+)", text)
    page = Client().get(path_of(view_url)).content.decode()
    assert personal_links(page) == []
    links = vote_links(page)
    assert len(links) == 8 and all("/feedback/web-copy/" in url for _, url in links)
    answer = Client().get(path_of(links[0][1]))
    assert answer.status_code == 302 and answer["Location"] == "/preferences/"
    assert not Vote.objects.exists()


def test_votes_are_rate_limited_per_reader_not_per_address(received, settings):
    settings.FEEDBACK_RATE_LIMIT = "2/m"
    _, _, html, _ = received
    urls = [path_of(url) for label, url in vote_links(html) if label == "More like this"]
    client = Client(REMOTE_ADDR="203.0.113.9")
    statuses = [client.post(url).status_code for url in urls[:3]]
    assert statuses == [303, 303, 429]
    assert Vote.objects.count() == 2
    # Looking stays possible; from another address the same reader is still over the limit.
    assert client.get(urls[3]).status_code == 200
    assert Client(REMOTE_ADDR="198.51.100.4").post(urls[3]).status_code == 429
    assert Vote.objects.count() == 2


def test_readers_behind_one_address_each_have_their_own_allowance(received, settings):
    """An office or a carrier's NAT: many readers, one address."""
    settings.FEEDBACK_RATE_LIMIT = "2/m"
    same_address = Client(REMOTE_ADDR="203.0.113.9")
    assert len(mail.outbox) == 2
    for message in mail.outbox:
        html = parsed(message).get_body(preferencelist=("html",)).get_content()
        urls = [path_of(url) for label, url in vote_links(html) if label == "More like this"]
        assert [same_address.post(url).status_code for url in urls[:3]] == [303, 303, 429]
    assert Vote.objects.count() == 4


def test_bad_tokens_are_refused_and_counted_per_address(received, settings):
    settings.FEEDBACK_BAD_TOKEN_RATE_LIMIT = "3/m"
    _, _, html, _ = received
    good = path_of(vote_links(html)[0][1])
    forged = good.replace(good.split("/")[2], good.split("/")[2][:-4] + "AAAA")
    prober = Client(REMOTE_ADDR="203.0.113.66")
    assert [prober.post(forged).status_code for _ in range(4)] == [400, 400, 400, 429]
    assert prober.get(forged).status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.4").get(forged).status_code == 400
    assert not Vote.objects.exists()