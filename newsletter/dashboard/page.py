"""The dashboard page: headline figures and charts from the aggregates in metrics.py, each
linked to the admin list behind it, then the reader feedback section (is personalisation used,
and is it keeping up?). A staff user sees the parts their view permissions cover. About a dozen
queries in all, whatever the size of the list (bench/dashboard_bench.py)."""

from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from newsletter.models import Delivery, Vote

from . import charts, metrics
from .charts import Series, Threshold, count, percent

STATUS_ORDER = [("active", "Active"), ("pending", "Pending"), ("unsubscribed", "Unsubscribed"), ("bounced", "Bounced"), ("complained", "Complained")]
ORIGINS = [("one-click", "One-click"), ("page", "Unsubscribe page"), ("provider", "At the provider"), ("admin", "By staff"), ("other", "Other")]
# A model is retrained as soon as the reader's change is committed (newsletter/tasks/personal.py):
# a wait longer than this means the workers are behind or down.
RETRAIN_WAIT_WARN = timedelta(hours=1)
RETRAIN_WAIT_BAD = timedelta(hours=24)


@dataclass
class Tile:
    label: str
    value: str
    href: str
    note: str = ""
    state: str = ""  # "", "ok", "warn" or "bad": the colour of the figure


@dataclass
class LegendItem:
    label: str
    css: str
    href: str | None
    value: str = ""


@dataclass
class Figure:
    """A current total, shown as text (no chart: there is no "per day" to draw)."""

    label: str
    value: str
    href: str | None = None
    note: str = ""
    state: str = ""  # as a Tile's


@dataclass
class Cell:
    text: str  # autoescaped by the template: may be scraped text
    href: str | None = None


@dataclass
class Table:
    """Its first column is text, the others numbers (right-aligned)."""

    caption: str
    headers: list[str]
    rows: list[list[Cell]]
    empty: str = "None yet."


@dataclass
class Panel:
    key: str
    title: str
    chart: SafeString | None = None
    note: str = ""
    legend: list[LegendItem] = field(default_factory=list)
    wide: bool = False
    figures: list[Figure] = field(default_factory=list)
    table: Table | None = None


def changelist(model: str, **params) -> str:
    """The admin list of `app.model`, filtered by `params` (admin lookups)."""
    url = _changelist_url(model)
    return f"{url}?{urlencode(params)}" if params else url


@lru_cache(maxsize=None)
def _changelist_url(model: str) -> str:
    # Resolved once per process: a page links a thousand bars to a handful of lists.
    app, name = model.split(".")
    return reverse(f"admin:{app}_{name}_changelist")


def events(**params) -> str:
    return changelist("subscriptions.consentevent", **params)


def rate_state(value: float | None, warn: float, bad: float | None = None) -> str:
    if value is None:
        return ""
    if bad is not None and value > bad:
        return "bad"
    return "warn" if value > warn else "ok"


def legend(series: list[Series], fmt=count) -> list[LegendItem]:
    return [LegendItem(s.label, s.css, s.href, fmt(s.total) if s.total is not None else "") for s in series]


def duration(delta: timedelta) -> str:
    """5 min, 3 h, 4 days."""
    minutes = max(delta.total_seconds(), 0) / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.0f} h" if minutes < 48 * 60 else f"{delta.days} days"


class Dashboard:
    def __init__(self, user, now=None):
        self.user = user
        self.now = now or timezone.now()
        self.window = metrics.Window.ending(self.now)
        self.dates = self.window.dates
        self.tiles: list[Tile] = []
        self.panels: list[Panel] = []
        self.feedback: list[Panel] = []  # the "Reader feedback" section

    def may(self, *perms: str) -> bool:
        return all(self.user.has_perm(p) for p in perms)

    def by_day(self, url: str, lookup: str, span: int = 1):
        """A point_href: `url` (a filtered list) narrowed to day i, or to the `span` days
        ending on it. Dates need no quoting, so the rest of the query is encoded once."""
        joiner = "&" if "?" in url else "?"
        if span == 1:
            return lambda i: f"{url}{joiner}{lookup}={self.dates[i]}"
        return lambda i: (f"{url}{joiner}{lookup}__gte={self.dates[i] - timedelta(days=span - 1)}"
                          f"&{lookup}__lte={self.dates[i]}")

    def build(self) -> "Dashboard":
        consent = metrics.consent_days(self.window) if self.may("subscriptions.view_consentevent") else None
        deliveries = metrics.deliveries_by_status(self.window) if self.may("newsletter.view_delivery") else None
        if self.may("subscriptions.view_subscriber"):
            self.subscribers()
        if consent:
            self.signups(consent)
        if deliveries:
            self.digests(deliveries)
        if consent and deliveries:
            self.deliverability(deliveries["sent"], consent)
        if self.may("newsletter.view_scraperun"):
            self.scraping()
        if consent:
            self.unsubscribes(consent)
        if self.may("subscriptions.view_subscriber", "subscriptions.view_topic"):
            self.topics()
        if self.may("newsletter.view_vote"):
            self.votes()
        if consent:
            self.topic_leaves(consent)
        if self.may("subscriptions.view_subscriber"):
            self.personalisation()
        if self.may("newsletter.view_vote"):
            self.most_voted()
        return self

    # --- panels ----------------------------------------------------------------------------

    def subscribers(self):
        counts = metrics.subscribers_by_status(self.window)
        series = [
            Series(label, counts[status], f"c-{status}", changelist("subscriptions.subscriber", status__exact=status), total=counts[status][-1])
            for status, label in STATUS_ORDER
        ]
        active = counts["active"]
        change = active[-1] - active[-31] if len(active) > 30 else 0
        self.tiles.insert(0, Tile("Active readers", count(active[-1]), series[0].href, f"{change:+,} in 30 days"))
        self.panels.append(Panel(
            "subscribers", "Readers by status", charts.stacked_areas("Subscribers by status, per day", self.dates, series),
            "At the end of each day. Click a status for its list.", legend(series),
        ))

    def signups(self, consent: metrics.ConsentDays):
        signups_href, confirmed_href = events(kind__exact="signup"), events(kind__exact="confirm")
        signups = Series("Sign-ups", consent.signups, "c-signup", signups_href,
                         self.by_day(signups_href, "created_at__date"), total=sum(consent.signups))
        confirmed = Series("Confirmed", consent.confirmations, "c-confirm", confirmed_href,
                           self.by_day(confirmed_href, "created_at__date"), total=sum(consent.confirmations))
        last30 = slice(-30, None)
        asked, done = sum(consent.signups[last30]), sum(consent.confirmations[last30])
        rate = done / asked if asked else None
        self.tiles.append(Tile(
            "Sign-ups, 30 days", count(asked), signups.href,
            f"{percent(rate)} confirmed" if rate is not None else "none yet", rate_state(None if rate is None else 1 - rate, 0.5),
        ))
        note = "Sign-up requests on the form (bars) and confirmations (line)."
        if sum(consent.imported):
            note += f" {count(sum(consent.imported))} imported rows are not counted here."
        self.panels.append(Panel(
            "signups", "Sign-ups and confirmations",
            charts.stacked_bars("Sign-ups and confirmations per day", self.dates, [signups], overlay=confirmed),
            note, legend([signups, confirmed]),
        ))

    def digests(self, deliveries: dict[str, list[int]]):
        S = Delivery.Status
        shown = [(S.SENT, "Sent"), (S.SKIPPED, "Skipped (nothing new)"), (S.FAILED, "Failed"), (S.PENDING, "Pending"), (S.SENDING, "Sending")]
        series = [
            Series(label, deliveries[status], f"c-{status}", changelist("newsletter.delivery", status__exact=status),
                   self.by_day(changelist("newsletter.delivery", status__exact=status), "digest_date"), total=sum(deliveries[status]))
            for status, label in shown
            if status in (S.SENT, S.SKIPPED, S.FAILED) or sum(deliveries[status])
        ]
        y = -2  # yesterday
        sent, failed = deliveries[S.SENT][y], deliveries[S.FAILED][y]
        day = self.dates[y]
        self.tiles.append(Tile(
            "Yesterday's digests", f"{count(sent)} sent", changelist("newsletter.delivery", digest_date=day.isoformat()),
            f"{count(failed)} failed, {count(deliveries[S.SKIPPED][y])} skipped", "bad" if failed > max(sent, 1) * 0.05 else ("warn" if failed else "ok"),
        ))
        self.panels.append(Panel(
            "digests", "Digests per day by outcome",
            charts.stacked_bars("Digests per day by outcome", self.dates, series),
            "By the reader's local date. Click a bar for that day's deliveries.", legend(series),
        ))

    def deliverability(self, sent: list[int], consent: metrics.ConsentDays):
        week = metrics.trailing_rates(sent, consent, 7)
        month = metrics.trailing_rates(sent, consent, 30)
        complaint_limit, bounce_limit = settings.HEALTH_COMPLAINT_RATE_MAX, settings.HEALTH_BOUNCE_RATE_MAX

        def window_link(kind: str, span: int, **extra):
            return self.by_day(events(kind__exact=kind, **extra), "created_at__date", span)

        c7, c30 = week.complaint_rate[-1], month.complaint_rate[-1]
        b7, b30 = week.bounce_rate[-1], month.bounce_rate[-1]
        complaints_href = events(kind__exact="complaint")
        bounces_href = events(kind__exact="bounce", details__has_key="previous_status")
        self.tiles.append(Tile("Complaint rate, 7 days", percent(c7) if c7 is not None else "–", complaints_href,
                               f"30 days: {percent(c30)}" if c30 is not None else "no sends", rate_state(c7, complaint_limit, 0.003)))
        self.tiles.append(Tile("Bounce rate, 7 days", percent(b7) if b7 is not None else "–", bounces_href,
                               f"30 days: {percent(b30)}" if b30 is not None else "no sends", rate_state(b7, bounce_limit)))
        complaint_series = [
            Series("7-day complaint rate", week.complaint_rate, "c-rate7", complaints_href, window_link("complaint", 7)),
            Series("30-day complaint rate", month.complaint_rate, "c-rate30", complaints_href, window_link("complaint", 30)),
        ]
        self.panels.append(Panel(
            "complaints", "Complaint rate",
            charts.lines("Complaint rate over the trailing 7 and 30 days", self.dates, complaint_series,
                         thresholds=[Threshold(0.001, "0.1% Gmail's limit", "warn"), Threshold(0.003, "0.3% rejected", "bad")]),
            "Complaints per digest sent. Gmail asks bulk senders to stay under 0.1% and never reach 0.3%.",
            legend(complaint_series),
        ))
        bounce_series = [
            Series("7-day bounce rate", week.bounce_rate, "c-rate7", bounces_href, window_link("bounce", 7, details__has_key="previous_status")),
            Series("30-day bounce rate", month.bounce_rate, "c-rate30", bounces_href, window_link("bounce", 30, details__has_key="previous_status")),
        ]
        self.panels.append(Panel(
            "bounces", "Bounce rate",
            charts.lines("Bounce rate over the trailing 7 and 30 days", self.dates, bounce_series,
                         thresholds=[Threshold(bounce_limit, f"{percent(bounce_limit)} alert", "warn")]),
            "Bounces that suppressed an address, per digest sent.", legend(bounce_series),
        ))

    def scraping(self):
        scrapes = metrics.scrape_days(self.window)
        runs = lambda **p: changelist("newsletter.scraperun", **p)  # noqa: E731
        papers = Series("Papers found", scrapes.papers_found, "c-papers", runs(status__exact="ok"),
                        self.by_day(runs(), "started_at__date"))
        failed = Series("Failed runs", scrapes.failed_runs, "c-failed", runs(status__exact="failed"),
                        self.by_day(runs(status__exact="failed"), "started_at__date"), total=scrapes.failures_in_window)
        last = scrapes.last_good
        if last:
            age = self.now - last.started_at
            value = f"{duration(age)} ago"
            state = "bad" if age > timedelta(hours=settings.HEALTH_SCRAPE_MAX_AGE_HOURS) else "ok"
            self.tiles.append(Tile("Last good scrape", value, reverse("admin:newsletter_scraperun_change", args=[last.pk]),
                                   f"{last.papers_found} papers, {last.started_at:%b %-d %H:%M} UTC", state))
        else:
            self.tiles.append(Tile("Last good scrape", "never", runs(), "no scrape has succeeded yet", "bad"))
        self.panels.append(Panel(
            "scrapes", "Scrape health",
            charts.stacked_bars("Papers found per day, and failed runs", self.dates, [papers], marks=failed),
            "Papers found by good runs each day; a red mark for each day with a failed run.", legend([papers, failed]),
        ))

    def unsubscribes(self, consent: metrics.ConsentDays):
        def origin_filter(origin):
            if origin in ("one-click", "page", "provider"):
                return {"details__method": origin}
            return {"details__method__startswith": "admin"} if origin == "admin" else {}

        series = [
            Series(label, consent.unsubscribes[origin], f"c-{origin}", events(kind__exact="unsubscribe", **origin_filter(origin)),
                   self.by_day(events(kind__exact="unsubscribe", **origin_filter(origin)), "created_at__date"),
                   total=sum(consent.unsubscribes[origin]))
            for origin, label in ORIGINS
            if origin not in ("admin", "other") or sum(consent.unsubscribes[origin])
        ]
        self.panels.append(Panel(
            "unsubscribes", "Unsubscribes by origin",
            charts.stacked_bars("Unsubscribes per day by origin", self.dates, series),
            "One-click is the List-Unsubscribe button in the mail client; the provider reports its own unsubscribe links.",
            legend(series),
        ))

    def topics(self):
        rows = [(t.name, t.readers, changelist("subscriptions.subscriber", topics__id__exact=t.pk, status__exact="active"))
                for t in metrics.topic_popularity()]
        self.panels.append(Panel(
            "topics", "Topic popularity", charts.ranked_bars("Active readers per topic", rows),
            "Active readers who chose each topic (a reader may choose several).",
        ))


    # --- reader feedback -------------------------------------------------------------------

    def votes(self):
        days = metrics.vote_days(self.window)
        votes = lambda **p: changelist("newsletter.vote", **p)  # noqa: E731
        more = Series("More like this", days.more, "c-more", votes(value__exact=Vote.MORE),
                      self.by_day(votes(value__exact=Vote.MORE), "updated_at__date"), total=sum(days.more))
        less = Series("Less like this", days.less, "c-less", votes(value__exact=Vote.LESS),
                      self.by_day(votes(value__exact=Vote.LESS), "updated_at__date"), total=sum(days.less))
        readers = Series("Readers who voted", days.readers, "c-voters", votes(), self.by_day(votes(), "updated_at__date"))
        self.feedback.append(Panel(
            "votes", "Votes per day", charts.stacked_bars("Votes per day, More and Less, and readers who voted", self.dates, [more, less], overlay=readers),
            "Each vote on the day it was last set, as it stands now: a changed vote counts once, an undone one not at all. "
            "The line: readers who voted that day.",
            legend([more, less, readers]),
        ))

    def topic_leaves(self, consent: metrics.ConsentDays):
        href = events(kind__exact="preferences", details__method=metrics.TOPIC_LEAVE_METHOD)
        leaves = Series("Topics left", consent.topic_leaves, "c-leave", href, self.by_day(href, "created_at__date"), total=sum(consent.topic_leaves))
        self.feedback.append(Panel(
            "topic-leaves", "“Not interested in” a topic",
            charts.stacked_bars("Topics left per day from the digest's “Not interested in” link", self.dates, [leaves]),
            "Readers who left one of their topics from a paper in their digest (logged as a preference change).",
            legend([leaves]),
        ))

    def personalisation(self):
        now = metrics.personalisation()
        if now.oldest_signal is None:
            wait_note, state = "none waiting", "ok"
        else:
            wait = self.now - now.oldest_signal
            wait_note = f"the oldest for {duration(wait)}"
            state = "bad" if wait > RETRAIN_WAIT_BAD else ("warn" if wait > RETRAIN_WAIT_WARN else "ok")
        self.feedback.append(Panel(
            "personalisation", "Personalisation now", note="Readers who get digests, recounted every few minutes; "
            "the retrain queue (every reader's) live. A model waits for retraining from the moment its reader tells us "
            "something new (a vote, a follow, a paper, their words, a topic left).",
            figures=[
                Figure("Readers with a trained model", count(now.trained)),
                Figure("Models waiting for retraining", count(now.waiting), note=wait_note, state=state),
                Figure("Readers following an author", count(now.following)),
                Figure("Seed papers not stored yet", count(now.seeds_waiting), note="a scrape stores them when it finds them"),
                Figure("Opted in to “outside your topics”", count(now.outside_topics),
                       changelist("subscriptions.subscriber", status__exact="active", outside_topics__exact=1)),
            ],
        ))

    def most_voted(self):
        days = 7
        since = {"updated_at__date__gte": self.dates[-days].isoformat()}
        votes = lambda paper, **p: changelist("newsletter.vote", paper__id__exact=paper, **since, **p)  # noqa: E731
        may_see_papers = self.may("newsletter.view_paper")
        rows = [
            [
                Cell(" ".join(paper.title.split()), reverse("admin:newsletter_paper_change", args=[paper.pk]) if may_see_papers else None),
                Cell(count(paper.more), votes(paper.pk, value__exact=Vote.MORE)),
                Cell(count(paper.less), votes(paper.pk, value__exact=Vote.LESS)),
            ]
            for paper in metrics.most_voted_papers(self.window, days)
        ]
        self.feedback.append(Panel(
            "most-voted", f"Most voted papers, {days} days",
            note=f"Votes counted over the last {days} days, as they stand now. Titles as scraped.",
            table=Table(f"The papers with most votes over the last {days} days", ["Paper", "More", "Less"], rows, "No votes in these days."),
        ))


def dashboard_context(request, now=None) -> dict:
    board = Dashboard(request.user, now).build()
    return {"dashboard": board, "dashboard_window": board.window}
