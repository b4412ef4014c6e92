"""Issue 10, "Why, shown to the reader": each paper of a digest shows only the reader's own
topics it belongs to, each with a short "why", in the email, the web copy and the staff
preview; readers with the same topics still share one rendering and one provider call, and
readers of the same papers one content row whatever their topics (in-process: tasks run
eagerly, email goes to Django's locmem outbox)."""

import re
from email import message_from_bytes, policy

from django.core import mail
from django.test import Client

from newsletter.digests import chunks, dispatch, preview
from newsletter.digests.rendering import WHY_CHARS, topic_why
from newsletter.models import Delivery, DigestContent, Paper, PaperTopicScore
from newsletter.tasks.digests import dispatch_now

from .helpers import make_subscriber, path_of

S = Delivery.Status


def both_topics_paper():
    return dict(arxiv_id="2611.40001", title="Coding agents that plan", abstract="Agents write code.", authors=["A"],
                upvotes=50, topics={"agents": 9.0, "code": 6.0})


def give_evidence(topics, arxiv_id="2611.40001"):
    """As topic assignment stores it: the phrases found, the classifier's words, the primary topic."""
    paper = Paper.objects.get(arxiv_id=arxiv_id)
    PaperTopicScore.objects.filter(paper=paper, topic=topics["agents"]).update(
        matched=["tool use", "web agent"], evidence={"terms": ["planner"]}, primary=True)
    PaperTopicScore.objects.filter(paper=paper, topic=topics["code"]).update(
        matched=["code generation"], evidence={"terms": ["repository"]})


def parts(message) -> tuple[str, str]:
    parsed = message_from_bytes(message.message().as_bytes(), policy=policy.default)
    return (parsed.get_body(preferencelist=("plain",)).get_content(),
            parsed.get_body(preferencelist=("html",)).get_content())


def whys_in(text: str) -> list[str]:
    return re.findall(r"^Why: (.+)$", text, re.M)


def test_a_paper_shows_only_the_readers_topics_with_why(topics, make_scrape):
    make_scrape([both_topics_paper()])
    give_evidence(topics)
    agents, code = topics["agents"].name, topics["code"].name
    only_agents = make_subscriber("agents@example.org", topics=[topics["agents"]])
    only_code = make_subscriber("code@example.org", topics=[topics["code"]])
    both = make_subscriber("both@example.org", topics=[topics["code"], topics["agents"]])

    # What the staff preview shows is what the email will show.
    previews = {s.email: preview.next_digest(s) for s in (only_agents, only_code, both)}

    dispatch_now(ignore_hour=True)
    by_to = {m.to[0]: parts(m) for m in mail.outbox}
    assert set(by_to) == {only_agents.email, only_code.email, both.email}

    text, html = by_to[only_agents.email]
    assert whys_in(text) == [f"{agents}: tool use, web agent, planner"]
    assert f'<span class="tag"' in html and f">{agents}</span>" in html and "tool use, web agent, planner" in html
    assert code not in text and code not in html and "code generation" not in text + html

    text, html = by_to[only_code.email]
    assert whys_in(text) == [f"{code}: code generation, repository"]
    assert agents not in text and "tool use" not in text + html

    # A reader of both sees both, the paper's primary topic first.
    text, html = by_to[both.email]
    assert whys_in(text) == [f"{agents}: tool use, web agent, planner", f"{code}: code generation, repository"]
    assert html.index(f">{agents}</span>") < html.index(f">{code}</span>")

    for email, (text, html) in by_to.items():
        assert whys_in(previews[email].text) == whys_in(text)
        assert "Topics:" not in text

    # The content is the papers sent: one row for the three readers, whatever their topics.
    assert DigestContent.objects.count() == 1
    assert Delivery.objects.filter(status=S.SENT).values("content").distinct().count() == 1

    # The web copy shows the reader's topics too.
    view_url = re.search(r"View in browser: (\S+)", by_to[only_agents.email][0]).group(1)
    page = Client().get(path_of(view_url)).content.decode()
    assert "tool use, web agent, planner" in page and f">{agents}</span>" in page
    assert "code generation" not in page


def test_readers_with_the_same_topics_share_one_rendering_and_call(topics, make_scrape):
    make_scrape([both_topics_paper()])
    give_evidence(topics)
    readers = [make_subscriber(f"a{i}@example.org", topics=[topics["agents"]]) for i in range(3)]
    readers += [make_subscriber(f"ab{i}@example.org", topics=[topics["code"], topics["agents"]]) for i in range(3)]
    readers += [make_subscriber(f"ba{i}@example.org", topics=[topics["agents"], topics["code"]]) for i in range(2)]
    dispatch.create_deliveries(ignore_hour=True)
    ids = list(Delivery.objects.values_list("pk", flat=True))
    report = chunks.send_chunk(ids, claimer="test-why")
    # The same papers for everyone; two topic sets (their order does not matter): two
    # renderings, one call each, one content row.
    assert report.sent == 8 and report.digests == 2 and report.calls == 2
    assert DigestContent.objects.count() == 1
    whys = {m.to[0]: tuple(whys_in(parts(m)[0])) for m in mail.outbox}
    assert len(set(whys.values())) == 2
    assert len({whys[r.email] for r in readers[3:]}) == 1


def test_the_why_is_short_and_scraped_evidence_is_cleaned(topics, make_scrape):
    make_scrape([both_topics_paper()])
    paper = Paper.objects.get(arxiv_id="2611.40001")
    PaperTopicScore.objects.filter(paper=paper, topic=topics["agents"]).update(
        matched=["%recipient.email%", "<b>bold</b>", "line\nbreak"], evidence={"terms": ["x" * 200, "{{ token }}"]})
    reader = make_subscriber("hostile@example.org", topics=[topics["agents"]])
    dispatch_now(ignore_hour=True)
    [message] = mail.outbox
    text, html = parts(message)
    [why] = whys_in(text)
    assert len(why) <= WHY_CHARS
    assert "%recipient.email%" not in text + html and "{{ token }}" not in text + html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "linebreak" in why and "x" * 200 not in text  # control characters go, as in titles
    assert Delivery.objects.get(subscriber=reader).status == S.SENT

    # Fewer phrases rather than a cut one; a name too long on its own is cut.
    assert topic_why("Agents", ["a" * 30, "b" * 30, "c" * 30]) == {
        "name": "Agents", "evidence": f"{'a' * 30}, {'b' * 30}", "why": f"Agents: {'a' * 30}, {'b' * 30}"}
    assert topic_why("Agents", ["a" * 90])["why"] == "Agents"
    assert len(topic_why("N" * 200)["why"]) == WHY_CHARS
