"""What the operator's dashboard shows, read as aggregates: every count here is a GROUP BY
query whatever the size of the list, and comes back as per-day series over a window of days
ending today (UTC), ready for the charts. Days that can no longer change come from the cache
(rollups.py).

Definitions shared with the deliverability alerts (newsletter/health.py):
- a *send* is a delivery with status `sent`, counted on its digest date;
- a *complaint* is a consent-log `complaint` event;
- a *bounce* is a consent-log `bounce` event that suppressed the address (it carries
  `previous_status`); soft bounces that only counted up, and the resets after a delivered
  event, are not bounces here;
- rows written by a CSV import (`details.source == "import"`) are counted apart: an old
  list's complaints and bounces are not this sender's.

Reader feedback (newsletter/feedback/, newsletter/personal/):
- a *vote* is a reader's standing "More like this" / "Less like this" on a paper (one row per
  reader and paper). It is counted on the day it was last set (`Vote.updated_at`), with the
  value it has now: a More changed to Less moves to the day of the change, as a Less; an
  undone vote is deleted and no longer counted anywhere. A day's *readers who voted* are the
  distinct readers with a vote counted that day. Votes are not append-only, so no day of them
  is closed: the days before today come from a snapshot (rollups.SNAPSHOT_TTL), today is live;
- a *topic leave* is a consent-log `preferences` event written by "Not interested in <topic>"
  (`details.method == "not-interested link"`, subscriptions.actions.leave_topic);
- the current totals count *active* readers (those who get digests): with a trained model
  (`ReaderProfile.trained_at` set), following at least one author, opted in to "outside your
  topics"; and the seed papers those readers named that no scrape has stored yet
  (`SeedPaper.paper` null). They are a snapshot (rollups.SNAPSHOT_TTL);
- the models *waiting for retraining* are the retrain queue, counted live: every stale
  profile (readers.STALE: told us something after the last training, or never trained),
  whatever its reader's status, since each is retrained alike. The oldest wait runs from
  that reader's latest signal (`signal_at`), so it understates a wait that later signals
  kept resetting;
- the *most voted papers* are the papers with most votes counted over the last 7 days of the
  window, More and Less apart.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import BooleanField, Case, Count, ExpressionWrapper, Min, Q, Sum, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from newsletter.app_settings import app_settings
from newsletter.feedback.votes import TOPIC_LEAVE_METHOD
from newsletter.models import Delivery, FollowedAuthor, ReaderProfile, ScrapeRun, SeedPaper, Vote
from newsletter.models.readers import STALE
from newsletter.models.papers import ScrapeRunQuerySet
from subscriptions.models import ConsentEvent, Subscriber, Topic

from . import rollups

S = Subscriber.Status
ENDED = (S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED)
# Where an unsubscribe came from, read from the consent log's `method` (admin methods are
# "admin:<staff user>").
UNSUBSCRIBE_ORIGINS = ("one-click", "page", "provider", "admin", "other")


# The days the dashboard shows.
DAYS = 90


@dataclass(frozen=True)
class Window:
    """The days a chart covers: `days` calendar days (UTC) ending on `today`."""

    today: date
    days: int

    @classmethod
    def ending(cls, now=None, days: int = DAYS) -> "Window":
        now = now or timezone.now()
        return cls(timezone.localdate(now), days)

    @property
    def first(self) -> date:
        return self.today - timedelta(days=self.days - 1)

    @property
    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]

    @property
    def start(self) -> datetime:
        """The first instant of the window, for timestamp columns."""
        return timezone.make_aware(datetime.combine(self.first, time.min))

    def index(self, day: date) -> int | None:
        offset = (day - self.first).days
        return offset if 0 <= offset < self.days else None


def _series(window: Window) -> list[int]:
    return [0] * window.days


def trailing_sum(values: list[int], span: int) -> list[int]:
    """Each day's total over the `span` days ending on it (fewer at the window's start)."""
    sums, running = [], 0
    for i, value in enumerate(values):
        running += value
        if i >= span:
            running -= values[i - span]
        sums.append(running)
    return sums


# --- subscribers by status -----------------------------------------------------------------


def refresh(now=None) -> None:
    """Count what the dashboard caches, so no operator waits for a cold count (beat:
    newsletter.tasks.dashboard.refresh_dashboard, more often than rollups.SNAPSHOT_TTL)."""
    window = Window.ending(now, DAYS)
    consent_days(window)
    deliveries_by_status(window)
    rollups.snapshot(f"subscribers:{window.first}:{window.days}", lambda: status_timeline(window), refresh=True)
    rollups.snapshot("topics", count_topic_readers, refresh=True)
    rollups.snapshot(f"votes:{window.first}:{window.days}", lambda: count_votes(window.first, window.today), refresh=True)
    rollups.snapshot("personalisation", count_personalisation, refresh=True)


def subscribers_by_status(window: Window) -> dict[str, list[int]]:
    """How many subscribers were in each status at the end of each day; the last day is
    today's live count (one small GROUP BY), the days before come from a snapshot of the
    timeline recomputed every few minutes (rollups.SNAPSHOT_TTL)."""
    timeline = rollups.snapshot(f"subscribers:{window.first}:{window.days}", lambda: status_timeline(window))
    live = dict(Subscriber.objects.values_list("status").annotate(n=Count("*")).order_by())
    return {status: [*timeline[status][:-1], live.get(status, 0)] for status in S.values}


def status_timeline(window: Window) -> dict[str, list[int]]:
    """Each subscriber's path is read from its own dates: pending from `created_at` (active at
    once if it was made active without a confirmation), active from `confirmed_at`, and in
    its final status (unsubscribed, bounced, complained) from `unsubscribed_at`. Three GROUP BY
    queries give the daily changes; the running sum gives the counts. A resubscribed reader
    counts as active since their first confirmation."""
    deltas: dict[str, dict[date, int]] = {status: defaultdict(int) for status in S.values}
    starts_active = ExpressionWrapper(Q(status=S.ACTIVE, confirmed_at__isnull=True), output_field=BooleanField())
    created = (
        Subscriber.objects.annotate(day=TruncDate("created_at"), starts_active=starts_active)
        .values("day", "starts_active").annotate(n=Count("*")).order_by()
    )
    for row in created:
        deltas[S.ACTIVE if row["starts_active"] else S.PENDING][row["day"]] += row["n"]
    confirmed = (
        Subscriber.objects.filter(confirmed_at__isnull=False).exclude(status=S.PENDING)
        .annotate(day=TruncDate("confirmed_at")).values("day").annotate(n=Count("*")).order_by()
    )
    for row in confirmed:
        deltas[S.PENDING][row["day"]] -= row["n"]
        deltas[S.ACTIVE][row["day"]] += row["n"]
    was_active = ExpressionWrapper(Q(confirmed_at__isnull=False) | Q(status=S.ACTIVE), output_field=BooleanField())
    ended = (
        Subscriber.objects.filter(status__in=ENDED)
        .annotate(day=TruncDate(Coalesce("unsubscribed_at", "updated_at")), was_active=was_active)
        .values("day", "status", "was_active").annotate(n=Count("*")).order_by()
    )
    for row in ended:
        deltas[S.ACTIVE if row["was_active"] else S.PENDING][row["day"]] -= row["n"]
        deltas[row["status"]][row["day"]] += row["n"]

    counts = {}
    for status, by_day in deltas.items():
        running = sum(n for day, n in by_day.items() if day < window.first)
        series = []
        for day in window.dates:
            running += by_day.get(day, 0)
            series.append(running)
        counts[status] = series
    return counts


# --- the consent log: sign-ups, unsubscribes, bounces, complaints -------------------------


@dataclass
class ConsentDays:
    signups: list[int]
    confirmations: list[int]
    imported: list[int]
    unsubscribes: dict[str, list[int]]
    bounces: list[int]
    complaints: list[int]
    topic_leaves: list[int]


def unsubscribe_origin(method: str | None) -> str:
    if method in ("one-click", "page", "provider"):
        return method
    if method and method.startswith("admin"):
        return "admin"
    return "other"


def consent_days(window: Window) -> ConsentDays:
    """Per day: sign-up requests and confirmations made on the public pages (imports apart),
    unsubscribes by origin, bounces that suppressed an address, complaints, topic leaves. The log is
    append-only, so every day before today is closed (rollups.per_day)."""
    figures = rollups.per_day("consent", window, window.today, count_consent_events)
    days = window.dates

    def series(key):
        return [figures[day].get(key, 0) for day in days]

    return ConsentDays(
        signups=series("signup"), confirmations=series("confirm"), imported=series("imported"),
        unsubscribes={origin: series(f"unsubscribe:{origin}") for origin in UNSUBSCRIBE_ORIGINS},
        bounces=series("bounce"), complaints=series("complaint"), topic_leaves=series("topic-leave"),
    )


def count_consent_events(first: date, last: date) -> dict[date, dict[str, int]]:
    """One GROUP BY over the consent log between two dates (inclusive)."""
    K = ConsentEvent.Kind
    start = timezone.make_aware(datetime.combine(first, time.min))
    end = timezone.make_aware(datetime.combine(last + timedelta(days=1), time.min))
    suppressing = Case(When(details__has_key="previous_status", then=Value(True)), default=Value(False))
    counted = Q(kind__in=[K.SIGNUP, K.CONFIRM, K.UNSUBSCRIBE, K.BOUNCE, K.COMPLAINT]) | Q(kind=K.PREFERENCES, details__method=TOPIC_LEAVE_METHOD)
    rows = (
        ConsentEvent.objects.filter(counted, created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at"), method=KT("details__method"), source=KT("details__source"), suppressing=suppressing)
        .values("day", "kind", "method", "source", "suppressing").annotate(n=Count("*")).order_by()
    )
    figures: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        kind = row["kind"]
        if row["source"] == "import":
            # Imported rows: counted apart, and an old list's suppressions are no bounces of ours.
            if kind not in (K.SIGNUP, K.CONFIRM):
                continue
            key = "imported"
        elif kind in (K.SIGNUP, K.CONFIRM):
            key = kind
        elif kind == K.UNSUBSCRIBE:
            key = f"unsubscribe:{unsubscribe_origin(row['method'])}"
        elif kind == K.BOUNCE:
            if not row["suppressing"]:
                continue
            key = "bounce"
        elif kind == K.PREFERENCES:
            key = "topic-leave"
        else:
            key = "complaint"
        figures[row["day"]][key] += row["n"]
    return {day: dict(values) for day, values in figures.items()}


# --- digests -------------------------------------------------------------------------------


def deliveries_by_status(window: Window) -> dict[str, list[int]]:
    """Deliveries per digest date and status. A digest date is closed once its pending
    deliveries have been sent or given up (DIGEST_GIVE_UP_AFTER_DAYS, and a day's margin)."""
    open_from = window.today - timedelta(days=app_settings.DIGEST_GIVE_UP_AFTER_DAYS + 1)
    figures = rollups.per_day("deliveries", window, open_from, count_deliveries)
    return {status: [figures[day].get(status, 0) for day in window.dates] for status in Delivery.Status.values}


def count_deliveries(first: date, last: date) -> dict[date, dict[str, int]]:
    """One GROUP BY on (digest_date, status), which the index on those two columns answers
    without reading the table."""
    figures: dict[date, dict[str, int]] = defaultdict(dict)
    rows = (
        Delivery.objects.filter(digest_date__gte=first, digest_date__lte=last)
        .values_list("digest_date", "status").annotate(n=Count("*")).order_by()
    )
    for day, status, n in rows:
        figures[day][status] = n
    return dict(figures)


@dataclass
class Rates:
    """Bounce and complaint rates over the trailing `span` days, per day of the window."""

    span: int
    sent: list[int]
    bounces: list[int]
    complaints: list[int]

    @staticmethod
    def ratio(events: int, sent: int) -> float | None:
        return events / sent if sent else None

    @property
    def bounce_rate(self) -> list[float | None]:
        return [self.ratio(b, s) for b, s in zip(self.bounces, self.sent)]

    @property
    def complaint_rate(self) -> list[float | None]:
        return [self.ratio(c, s) for c, s in zip(self.complaints, self.sent)]


def trailing_rates(sent_per_day: list[int], consent: ConsentDays, span: int) -> Rates:
    return Rates(span, trailing_sum(sent_per_day, span), trailing_sum(consent.bounces, span), trailing_sum(consent.complaints, span))


# --- scraping ------------------------------------------------------------------------------


@dataclass
class ScrapeDays:
    good_runs: list[int]
    failed_runs: list[int]
    papers_found: list[int]
    papers_new: list[int]
    last_good: ScrapeRun | None = None
    last_failed: ScrapeRun | None = None
    failures_in_window: int = field(default=0)


def scrape_days(window: Window) -> ScrapeDays:
    result = ScrapeDays(_series(window), _series(window), _series(window), _series(window))
    good = Q(status__in=ScrapeRunQuerySet.GOOD)
    rows = (
        ScrapeRun.objects.filter(started_at__gte=window.start)
        .annotate(day=TruncDate("started_at"))
        .values("day")
        .annotate(
            good=Count("pk", filter=good),
            failed=Count("pk", filter=Q(status=ScrapeRun.Status.FAILED)),
            found=Coalesce(Sum("papers_found", filter=Q(status=ScrapeRun.Status.OK)), 0),
            new=Coalesce(Sum("papers_new", filter=Q(status=ScrapeRun.Status.OK)), 0),
        )
        .order_by()
    )
    for row in rows:
        i = window.index(row["day"])
        if i is None:
            continue
        result.good_runs[i], result.failed_runs[i] = row["good"], row["failed"]
        result.papers_found[i], result.papers_new[i] = row["found"], row["new"]
    result.failures_in_window = sum(result.failed_runs)
    result.last_good = ScrapeRun.objects.last_good()
    result.last_failed = ScrapeRun.objects.filter(status=ScrapeRun.Status.FAILED).order_by("-started_at", "-pk").first()
    return result


# --- topics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicReaders:
    pk: int
    name: str
    readers: int


def topic_popularity() -> list[TopicReaders]:
    """Active topics with how many active subscribers chose each, most chosen first
    (a snapshot: rollups.SNAPSHOT_TTL)."""
    return rollups.snapshot("topics", count_topic_readers)


def count_topic_readers() -> list[TopicReaders]:
    topics = Topic.objects.filter(active=True).annotate(
        readers=Count("subscribers", filter=Q(subscribers__status=S.ACTIVE))
    ).order_by("-readers", "display_order", "name")
    return [TopicReaders(t.pk, t.name, t.readers) for t in topics]


# --- reader feedback -----------------------------------------------------------------------


@dataclass
class VoteDays:
    more: list[int]
    less: list[int]
    readers: list[int]


def vote_days(window: Window) -> VoteDays:
    """Votes per day, More and Less apart, and the readers who voted (see the module's
    definitions): the days before today from a snapshot, today counted live."""
    snapshot = rollups.snapshot(f"votes:{window.first}:{window.days}", lambda: count_votes(window.first, window.today))
    figures = {**snapshot, window.today: count_votes(window.today, window.today).get(window.today, {})}

    def series(key):
        return [figures.get(day, {}).get(key, 0) for day in window.dates]

    return VoteDays(series("more"), series("less"), series("readers"))


def count_votes(first: date, last: date) -> dict[date, dict[str, int]]:
    """One GROUP BY over the votes set between two dates (inclusive), by the index on updated_at."""
    start = timezone.make_aware(datetime.combine(first, time.min))
    end = timezone.make_aware(datetime.combine(last + timedelta(days=1), time.min))
    rows = (
        Vote.objects.filter(updated_at__gte=start, updated_at__lt=end)
        .annotate(day=TruncDate("updated_at")).values("day")
        .annotate(more=Count("pk", filter=Q(value=Vote.MORE)), less=Count("pk", filter=Q(value=Vote.LESS)),
                  readers=Count("subscriber", distinct=True))
        .order_by()
    )
    return {row.pop("day"): row for row in rows}


@dataclass(frozen=True)
class Personalisation:
    """Personalisation now (see the module's definitions)."""

    trained: int
    following: int
    seeds_waiting: int
    outside_topics: int
    waiting: int
    oldest_signal: datetime | None  # the oldest wait for retraining starts here


def personalisation() -> Personalisation:
    """The retrain queue live (is retraining keeping up?): one aggregate over the stale
    profiles only, not a join with the whole list; the other figures from a snapshot."""
    slow = rollups.snapshot("personalisation", count_personalisation)
    queue = ReaderProfile.objects.filter(STALE).aggregate(waiting=Count("pk"), oldest_signal=Min("signal_at"))
    return Personalisation(**slow, **queue)


def count_personalisation() -> dict[str, int]:
    active = Q(subscriber__status=S.ACTIVE)
    return {
        "trained": ReaderProfile.objects.filter(active, trained_at__isnull=False).count(),
        "following": FollowedAuthor.objects.filter(active).values("subscriber").distinct().count(),
        "seeds_waiting": SeedPaper.objects.filter(active, paper__isnull=True).count(),
        "outside_topics": Subscriber.objects.filter(status=S.ACTIVE, outside_topics=True).count(),
    }


@dataclass(frozen=True)
class VotedPaper:
    pk: int
    title: str  # as scraped: hostile input, escaped where it is shown
    more: int
    less: int


def most_voted_papers(window: Window, days: int = 7, limit: int = 5) -> list[VotedPaper]:
    """The papers with most votes counted over the window's last `days` days, in one GROUP BY
    (ties: more Mores first, then the newest paper)."""
    start = timezone.make_aware(datetime.combine(window.today - timedelta(days=days - 1), time.min))
    rows = (
        Vote.objects.filter(updated_at__gte=start).values("paper", "paper__title")
        .annotate(votes=Count("pk"), more=Count("pk", filter=Q(value=Vote.MORE)), less=Count("pk", filter=Q(value=Vote.LESS)))
        .order_by("-votes", "-more", "-paper")[:limit]
    )
    return [VotedPaper(row["paper"], row["paper__title"], row["more"], row["less"]) for row in rows]
