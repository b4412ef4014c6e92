"""The pages behind "More like this" / "Less like this". No login: the signed token is the
credential, and it grants only votes on the papers of the reader's own digest. GET never
writes (link scanners follow every link in an email); every change is a POST with a CSRF
token, answered with a redirect to the "rate this digest" page (a reload sends nothing again)."""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_ratelimit.core import is_ratelimited

from newsletter.app_settings import app_settings
from newsletter.models import DigestItem, Paper, PaperTopicScore, Vote
from newsletter.scraped import strip_merge_syntax
from newsletter import sources
from subscriptions import actions
from subscriptions.models import Topic

from . import tokens, votes

ACTIONS = {"more": Vote.MORE, "less": Vote.LESS}
PAGE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


def _too_many(request, group: str, key, rate: str) -> bool:
    """`key`: django-ratelimit's ("ip": the client's address, as the sign-up form counts it),
    or a string to count by."""
    return is_ratelimited(request, group=group, key=key if key == "ip" else (lambda group, request: key), rate=rate,
                          increment=True)


def _see_other(url: str) -> HttpResponseRedirect:
    """303: the browser GETs the page after the POST (a reload does not post again)."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _with_headers(response):
    for name, value in PAGE_HEADERS.items():
        response[name] = value
    return response


def _target_or_answer(request, token):
    """(target, None), or (None, the page to answer with) for the web copy or a bad token.
    Bad tokens are counted per IP (FEEDBACK_BAD_TOKEN_RATE_LIMIT): guessing gains nothing
    from an HMAC, but nobody needs to try many."""
    if token == tokens.WEB_COPY:
        messages.info(request, "Rate papers from the digest in your inbox, or ask for your preferences link here.")
        return None, redirect("subscriptions:email_preferences_link")
    try:
        return tokens.read(token), None
    except tokens.InvalidFeedbackToken:
        if _too_many(request, "feedback-bad-token", "ip", app_settings.FEEDBACK_BAD_TOKEN_RATE_LIMIT):
            return None, render(request, "subscriptions/rate_limited.html", status=429)
        return None, render(request, "subscriptions/invalid_link.html", {"what": "feedback"}, status=400)


def feedback_page(*methods):
    """A page behind a feedback token: never cached, only `methods`; the view gets the token's
    target (a bad token or the web copy's never reach it). POSTs are counted per reader
    (FEEDBACK_RATE_LIMIT), after the token was checked: the token is the credential, so no
    one can spend another reader's allowance, and readers behind one address (an office, a
    campus, a carrier's NAT) do not share one."""

    def decorate(view):
        @never_cache
        @require_http_methods(list(methods))
        @wraps(view)
        def page(request, token, **kwargs):
            target, answer = _target_or_answer(request, token)
            if answer is None and request.method == "POST" and _too_many(
                request, "feedback", str(target.delivery.subscriber_id), app_settings.FEEDBACK_RATE_LIMIT
            ):
                answer = render(request, "subscriptions/rate_limited.html", status=429)
            return _with_headers(answer if answer is not None else view(request, token, target, **kwargs))

        return page

    return decorate


def _title(paper) -> str:
    return strip_merge_syntax(" ".join((paper.title or "").split()))


def _back_to(token, paper=None):
    anchor = f"#paper-{paper.pk}" if paper is not None else ""
    return _see_other(f"{reverse('feedback:rate', args=[token])}{anchor}")


@feedback_page("GET", "POST")
def vote(request, token, target, action):
    if action not in ACTIONS:
        raise Http404
    label = "More like this" if action == "more" else "Less like this"
    if request.method == "POST":
        votes.record(target, ACTIONS[action])
        messages.success(request, f"Recorded “{label}” for “{_title(target.paper)}”.")
        return _back_to(token, target.paper)
    context = {
        "token": token,
        "action": action,
        "label": label,
        "title": _title(target.paper),
        "current": votes.votes_on(target.delivery.subscriber_id, [target.paper.pk]).get(target.paper.pk),
    }
    return render(request, "feedback/vote.html", context)


@feedback_page("GET")
def rate(request, token, target):
    """The digest the token comes from, each paper with its own More/Less pair and undo."""
    delivery, subscriber = target.delivery, target.subscriber
    items = list(DigestItem.objects.filter(content_id=delivery.content_id).select_related("paper").order_by("position"))
    paper_ids = [item.paper_id for item in items]
    given = votes.votes_on(subscriber.pk, paper_ids)
    own_topics = dict(subscriber.topics.values_list("pk", "name"))
    topics_of: dict[int, list[tuple[int, str]]] = {pk: [] for pk in paper_ids}
    for paper_id, topic_id in (
        PaperTopicScore.objects.filter(paper_id__in=paper_ids, topic_id__in=list(own_topics))
        .order_by("-primary", "-score").values_list("paper_id", "topic_id")
    ):
        topics_of[paper_id].append((topic_id, own_topics[topic_id]))
    source_of = Paper.objects.sources_of(paper_ids)
    papers = []
    for item in items:
        paper = item.paper
        source = source_of.get(paper.pk) or sources.default()
        papers.append({
            "pk": paper.pk,
            "title": _title(paper),
            "url": source.paper_url(paper.arxiv_id),
            "token": tokens.make(subscriber.pk, delivery.pk, paper.pk),
            "vote": given.get(paper.pk),
            "topics": topics_of[paper.pk],
            "current": paper.pk == target.paper.pk,
        })
    context = {
        "token": token,
        "papers": papers,
        "digest_date": delivery.digest_date,
        "voted_count": len(given),
        "leave_topics": len(own_topics) > 1,
        "site_name": settings.SITE_NAME,
    }
    return render(request, "feedback/rate.html", context)


@feedback_page("POST")
def undo(request, token, target):
    if votes.undo(target):
        messages.success(request, f"Your vote on “{_title(target.paper)}” is undone.")
    return _back_to(token, target.paper)


@feedback_page("POST")
def not_interested(request, token, target):
    """"Not interested in <topic>": leave one of the paper's topics that the reader follows."""
    topic_id = request.POST.get("topic", "")
    topic = None
    if topic_id.isascii() and topic_id.isdigit() and len(topic_id) < 10:
        topic = Topic.objects.filter(pk=int(topic_id), papers=target.paper).first()
    if topic is None:
        return render(request, "subscriptions/invalid_link.html", {"what": "feedback"}, status=400)
    if target.subscriber.topics.count() <= 1:
        messages.info(request, "That is your only topic: to stop the digest, use the unsubscribe link in the email.")
    elif votes.leave_topic(target, topic, actions.Origin.from_request(request)):
        messages.success(request, f"You will no longer get papers for “{topic.name}”.")
    return _back_to(token)
