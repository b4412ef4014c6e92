"""A few months of an operator's life, written straight into PostgreSQL with INSERT ...
SELECT generate_series so that the same code seeds the browser test (a few thousand readers)
and bench/dashboard_bench.py (100,000 readers, 1,000,000 deliveries) in seconds.

The shape, relative to `now` (all "random" choices are hashes of row numbers, so a seed is
the same every time):
- sign-ups grow over `days` days (more every week); 12% never confirm;
- 7% of the confirmed unsubscribe later (half by one-click, 30% on the page, 20% at the
  provider), 1% bounce;
- every confirmed reader gets a digest each day (weekly readers on their weekday) until they
  leave, thinned to `deliveries` in all if asked; 3% are skipped, 1% fail, and on one day
  (`failure_day` days ago) 30% fail;
- complaints run at `base_complaint_rate` of the day's sends, and at `spike_complaint_rate`
  from `spike_start` days ago through `spike_end` days ago: the 7-day complaint rate crosses
  0.1% on the way up and down, on the days `Seed.crossings()` computes from what was written;
- a scrape every morning (a failed one and a good retry every ninth day), and the newest good
  run three hours ago;
- reader feedback (`_seed_feedback`): a fifth of the confirmed readers vote "More" or "Less"
  on about one of 40 papers a week, most on a few popular ones; every 97th voter's model
  waits for retraining; some follow an author, name a paper no scrape stored, opt in to
  "outside your topics" or leave a topic with "Not interested in".
"""

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.utils import timezone

# The curated topics, most chosen first, and the share of readers who pick each.
POPULARITY = [
    ("llm-reasoning", 45), ("agents", 40), ("multimodal", 32), ("nlp-foundations", 28), ("code", 25),
    ("reinforcement-learning", 20), ("efficiency", 17), ("image-generation", 15), ("retrieval-rag", 13),
    ("alignment-safety", 11), ("video-generation", 9), ("evaluation", 8), ("robotics", 7), ("vision-3d", 6),
    ("speech-audio", 5), ("science-medicine", 4), ("continual-learning", 3), ("education", 2),
]


@dataclass
class Seed:
    now: datetime
    days: int
    subscribers: int = 0
    deliveries: int = 0
    # Per day, oldest first: sends (status sent) and complaints, as written.
    dates: list[date] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    complaints: list[int] = field(default_factory=list)
    spike_first_day: date | None = None
    spike_last_day: date | None = None

    def trailing_complaint_rate(self, span: int = 7) -> list[float | None]:
        rates = []
        for i in range(len(self.dates)):
            lo = max(0, i - span + 1)
            sent = sum(self.sent[lo : i + 1])
            rates.append(sum(self.complaints[lo : i + 1]) / sent if sent else None)
        return rates

    def crossings(self, line: float = 0.001, span: int = 7) -> tuple[date, date]:
        """(the first day whose trailing rate is above `line`, the first day after it back at or
        below `line`), computed from the rows the seed wrote."""
        rates = self.trailing_complaint_rate(span)
        up = next(i for i, r in enumerate(rates) if r is not None and r > line)
        down = next(i for i in range(up, len(rates)) if rates[i] is not None and rates[i] <= line)
        return self.dates[up], self.dates[down]


def _execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.rowcount


def _scalar(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.fetchone()[0]


def seed(
    subscribers: int = 3000,
    days: int = 120,
    deliveries: int | None = None,
    now: datetime | None = None,
    spike_start: int = 24,
    spike_end: int = 12,
    base_complaint_rate: float = 0.0002,
    spike_complaint_rate: float = 0.0025,
    failure_day: int = 40,
    email_domain: str = "example.org",
) -> Seed:
    """Write the data described above into empty tables (topics must exist)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    result = Seed(now=now, days=days, subscribers=subscribers)
    p = {"n": subscribers, "days": days, "start": start, "now": now, "today": today, "domain": email_domain}

    # Sign-ups: reader i signs up at start + days * sqrt(i/n), so more sign up every week.
    _execute(
        """
        INSERT INTO subscriptions_subscriber
          (email, status, frequency, weekday, timezone, send_hour, papers_per_email, paused, soft_bounces,
           secret, created_at, confirmed_at, unsubscribed_at, updated_at)
        SELECT 'reader' || i || '@' || %(domain)s, 'active',
               CASE WHEN i %% 5 = 0 THEN 'weekly' ELSE 'daily' END, i %% 7, 'UTC', 7, 10, false, 0,
               md5('secret' || i), c, NULL, NULL, c
        FROM (SELECT i, LEAST(%(start)s + (%(days)s * sqrt(i::float8 / %(n)s)) * interval '1 day', %(now)s) AS c
              FROM generate_series(1, %(n)s) AS i) AS signups
        """,
        p,
    )
    base_id = _scalar("SELECT min(id) FROM subscriptions_subscriber WHERE email = %s", [f"reader1@{email_domain}"])
    p["base"] = base_id - 1  # reader i has id base + i
    # 12% never confirm; the others confirm within the hour.
    _execute(
        """
        UPDATE subscriptions_subscriber SET
          status = CASE WHEN (id - %(base)s) %% 100 < 12 THEN 'pending' ELSE 'active' END,
          confirmed_at = CASE WHEN (id - %(base)s) %% 100 < 12 THEN NULL
                              ELSE LEAST(created_at + ((id %% 47) + 3) * interval '1 minute', %(now)s) END
        WHERE id > %(base)s
        """,
        p,
    )
    # 7% unsubscribe and 1% bounce, days after confirming (only what happened before now).
    _execute(
        """
        UPDATE subscriptions_subscriber SET
          status = CASE WHEN (id - %(base)s) %% 100 = 19 THEN 'bounced' ELSE 'unsubscribed' END,
          unsubscribed_at = confirmed_at + (((id - %(base)s) * 7919) %% 45 + 1) * interval '1 day' + interval '9 hours'
        WHERE id > %(base)s AND (id - %(base)s) %% 100 BETWEEN 12 AND 19 AND (id - %(base)s) %% 100 <> 12
          AND confirmed_at + (((id - %(base)s) * 7919) %% 45 + 1) * interval '1 day' + interval '9 hours' < %(now)s
        """,
        p,
    )
    _seed_topics(p)
    _seed_consent_log(p)
    result.deliveries = _seed_deliveries(p, deliveries, failure_day)
    _seed_complaints(result, p, spike_start, spike_end, base_complaint_rate, spike_complaint_rate)
    _seed_scrapes(p)
    _seed_feedback(p)
    result.deliveries = _scalar("SELECT count(*) FROM newsletter_delivery")
    return result


def _seed_topics(p):
    values = ", ".join(["(%s, %s)"] * len(POPULARITY))
    flat = [item for pair in POPULARITY for item in pair]
    _execute(
        f"""
        INSERT INTO subscriptions_subscriber_topics (subscriber_id, topic_id)
        SELECT s.id, t.id
        FROM subscriptions_subscriber s
        CROSS JOIN (VALUES {values}) AS pop(slug, share)
        JOIN subscriptions_topic t ON t.slug = pop.slug
        WHERE s.id > {int(p['base'])} AND ((s.id * 7919 + t.id * 104729) %% 100) < pop.share
        """,
        flat,
    )


def _seed_consent_log(p):
    _execute(
        """
        INSERT INTO subscriptions_consentevent (subscriber_id, kind, created_at, ip_address, user_agent, details)
        SELECT id, 'signup', created_at, '192.0.2.1'::inet, 'Seed/1.0', jsonb_build_object('frequency', frequency)
        FROM subscriptions_subscriber WHERE id > %(base)s
        UNION ALL
        SELECT id, 'confirm', confirmed_at, '192.0.2.1'::inet, 'Seed/1.0', jsonb_build_object('previous_status', 'pending')
        FROM subscriptions_subscriber WHERE id > %(base)s AND confirmed_at IS NOT NULL
        UNION ALL
        SELECT id, 'unsubscribe', unsubscribed_at, NULL::inet, 'Seed/1.0', jsonb_build_object(
                 'method', CASE WHEN ((id - %(base)s) / 100) %% 10 < 5 THEN 'one-click'
                                WHEN ((id - %(base)s) / 100) %% 10 < 8 THEN 'page' ELSE 'provider' END,
                 'previous_status', 'active')
        FROM subscriptions_subscriber WHERE id > %(base)s AND status = 'unsubscribed'
        UNION ALL
        SELECT id, 'bounce', unsubscribed_at, NULL::inet, 'mailgun webhook', jsonb_build_object('esp', 'Mailgun', 'previous_status', 'active')
        FROM subscriptions_subscriber WHERE id > %(base)s AND status = 'bounced'
        """,
        p,
    )


def _seed_deliveries(p, target: int | None, failure_day: int) -> int:
    """A digest per reader and day from the day after confirming until the day they left."""
    span = """
        FROM subscriptions_subscriber s
        CROSS JOIN LATERAL generate_series(
            GREATEST((s.confirmed_at + interval '1 day')::date, %(first)s::date),
            LEAST(COALESCE(s.unsubscribed_at::date, %(today)s::date), %(today)s::date),
            interval '1 day') AS d
        WHERE s.id > %(base)s AND s.confirmed_at IS NOT NULL
          AND (s.frequency = 'daily' OR extract(isodow FROM d) - 1 = s.weekday)
    """
    p = {**p, "first": p["today"] - timedelta(days=p["days"] - 1)}
    possible = _scalar(f"SELECT count(*) {span}", p)
    # Keep each (reader, day) with probability target/possible, by a hash of the pair.
    p["keep"] = 1000 if not target or target >= possible else math.ceil(1000 * target / possible)
    p["failure_date"] = p["today"] - timedelta(days=failure_day)
    status = """CASE
            WHEN d::date = %(failure_date)s::date AND (s.id %% 10) < 3 THEN 'failed'
            WHEN ((s.id * 13 + (d::date - %(first)s::date) * 7) %% 100) < 3 THEN 'skipped'
            WHEN ((s.id * 13 + (d::date - %(first)s::date) * 7) %% 100) = 3 THEN 'failed'
            ELSE 'sent' END"""
    return _execute(
        f"""
        INSERT INTO newsletter_delivery
          (subscriber_id, digest_date, kind, status, created_at, queued_at, claimed_at, claimed_by, attempts,
           sent_at, provider_message_id, error, content_id)
        SELECT subscriber_id, digest_date, kind, status, at, at, NULL, '', 1,
               CASE WHEN status = 'sent' THEN at + interval '2 minutes' END, '',
               CASE WHEN status = 'failed' THEN 'provider refused the batch' ELSE '' END, NULL
        FROM (SELECT s.id AS subscriber_id, d::date AS digest_date, s.frequency AS kind, {status} AS status,
                     d + interval '7 hours' AS at
              {span}
                AND ((s.id * 31 + (d::date - %(first)s::date) * 17) %% 1000) < %(keep)s) AS rows
        """,
        p,
    )


def _seed_complaints(result: Seed, p, spike_start, spike_end, base_rate, spike_rate):
    """Day by day, oldest first: mark as complained as many of the day's recipients as the
    rate asks (carrying fractions over), log the complaint, drop their later digests."""
    first = p["today"] - timedelta(days=p["days"] - 1)
    sent_by_day = dict(
        _rows("SELECT digest_date, count(*) FROM newsletter_delivery WHERE status = 'sent' AND digest_date >= %s GROUP BY 1", [first])
    )
    carried = 0.0
    result.spike_first_day = p["today"] - timedelta(days=spike_start)
    result.spike_last_day = p["today"] - timedelta(days=spike_end)
    for offset in range(p["days"]):
        day = first + timedelta(days=offset)
        sent = _scalar(
            "SELECT count(*) FROM newsletter_delivery WHERE status = 'sent' AND digest_date = %s", [day]
        ) if sent_by_day.get(day) else 0
        rate = spike_rate if result.spike_first_day <= day <= result.spike_last_day else base_rate
        carried += sent * rate
        wanted = int(carried)
        carried -= wanted
        complained = 0
        if wanted:
            at = timezone.make_aware(datetime.combine(day, time(15)))
            complained = _execute(
                """
                WITH chosen AS (
                  SELECT s.id FROM subscriptions_subscriber s
                  JOIN newsletter_delivery d ON d.subscriber_id = s.id AND d.digest_date = %(day)s AND d.status = 'sent'
                  WHERE s.status = 'active' ORDER BY (s.id * 2654435761) %% 1000003 LIMIT %(wanted)s
                ), marked AS (
                  UPDATE subscriptions_subscriber s SET status = 'complained', unsubscribed_at = %(at)s, updated_at = %(at)s
                  FROM chosen WHERE s.id = chosen.id RETURNING s.id
                ), dropped AS (
                  DELETE FROM newsletter_delivery d USING marked WHERE d.subscriber_id = marked.id AND d.digest_date > %(day)s
                )
                INSERT INTO subscriptions_consentevent (subscriber_id, kind, created_at, ip_address, user_agent, details)
                SELECT id, 'complaint', %(at)s, NULL::inet, 'mailgun webhook',
                       jsonb_build_object('esp', 'Mailgun', 'event', 'complained', 'previous_status', 'active')
                FROM marked
                """,
                {"day": day, "wanted": wanted, "at": at},
            )
        result.dates.append(day)
        result.sent.append(sent)
        result.complaints.append(complained)


def _rows(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _seed_scrapes(p):
    """A run every morning at 05:00; every ninth day it fails and the 08:30 retry succeeds;
    the newest good run is three hours before `now`."""
    _execute(
        """
        INSERT INTO newsletter_scraperun
          (source, kind, started_at, finished_at, status, http_status, etag, last_modified, papers_found,
           papers_new, papers_updated, records_skipped, parser, error, alerted_at)
        SELECT 'https://huggingface.co/papers/trending', 'trending', t, t + interval '40 seconds', r.status,
               CASE WHEN r.status = 'failed' THEN 503 ELSE 200 END, '', '',
               CASE WHEN r.status = 'ok' THEN 40 + (n * 37) %% 25 ELSE 0 END,
               CASE WHEN r.status = 'ok' THEN 8 + (n * 53) %% 17 ELSE 0 END,
               CASE WHEN r.status = 'ok' THEN 20 ELSE 0 END, 0, 'props',
               CASE WHEN r.status = 'failed' THEN 'HTTP 503 from huggingface.co' ELSE '' END,
               CASE WHEN r.status = 'failed' THEN t + interval '1 minute' END
        FROM generate_series(0, %(days)s - 1) AS n
        CROSS JOIN LATERAL (VALUES
            (%(now)s - interval '3 hours' - n * interval '1 day', CASE WHEN n %% 9 = 4 THEN 'failed' ELSE 'ok' END),
            (%(now)s - interval '3 hours' - n * interval '1 day' + interval '3 hours 30 minutes', CASE WHEN n %% 9 = 4 THEN 'ok' END)
        ) AS r(t, status)
        WHERE r.status IS NOT NULL AND r.t <= %(now)s
        """,
        p,
    )


FEEDBACK_PAPERS = 40


def _seed_feedback(p):
    """Votes from every fifth confirmed reader on about one day in seven between confirming
    and leaving, a quarter of them "Less"; the paper is skewed towards the first few of 40
    (so some papers are clearly the most voted). Each voter has a model trained two minutes
    after their last vote, except every 97th voter's, which waits: they told us something in
    the last hour."""
    _execute(
        """
        INSERT INTO newsletter_paper (arxiv_id, title, abstract, ai_summary, ai_keywords, authors, upvotes, num_comments,
                                      github_repo, project_page, thumbnail, organization, first_seen_at, last_seen_at)
        SELECT '2610.9' || lpad(n::text, 4, '0'),
               (ARRAY['Scaling laws for', 'Agents that plan with', 'Reasoning over', 'Sparse attention in'])[1 + n %% 4]
                 || ' language models, part ' || n,
               '', '', '[]', '[]', 200 - n, 0, '', '', '', '', %(start)s, %(now)s
        FROM generate_series(1, %(papers)s) AS n
        ON CONFLICT (arxiv_id) DO NOTHING
        """,
        {**p, "papers": FEEDBACK_PAPERS},
    )
    _execute(
        """
        INSERT INTO newsletter_vote (subscriber_id, paper_id, value, delivery_id, created_at, updated_at)
        SELECT v.subscriber_id, pp.id, v.value, NULL, v.at, v.at
        FROM (SELECT s.id AS subscriber_id,
                     floor(%(papers)s * power(((s.id * 7919 + (d::date - %(today)s::date) * 104729) %% 1000) / 1000.0, 2))::int AS k,
                     CASE WHEN (s.id + (d::date - %(today)s::date)) %% 4 = 0 THEN -1 ELSE 1 END AS value,
                     d + interval '8 hours' + (s.id %% 600) * interval '1 minute' AS at
              FROM subscriptions_subscriber s
              CROSS JOIN LATERAL generate_series(s.confirmed_at::date + 1, COALESCE(s.unsubscribed_at::date, %(today)s::date),
                                                 interval '1 day') AS d
              WHERE s.id > %(base)s AND s.confirmed_at IS NOT NULL AND s.id %% 5 = 0
                AND ((s.id * 17 + (d::date - %(today)s::date) * 13) %% 7) = 0) AS v
        JOIN (SELECT id, row_number() OVER (ORDER BY arxiv_id) - 1 AS k FROM newsletter_paper WHERE arxiv_id LIKE '2610.9%%') AS pp
          ON pp.k = v.k
        WHERE v.at <= %(now)s
        ON CONFLICT (subscriber_id, paper_id) DO NOTHING
        """,
        {**p, "papers": FEEDBACK_PAPERS},
    )
    _execute(
        """
        INSERT INTO newsletter_readerprofile (subscriber_id, version, signal_at, trained_at, model)
        SELECT subscriber_id, 1, signal_at, CASE WHEN waits THEN signal_at - interval '1 day' ELSE LEAST(last + interval '2 minutes', %(now)s) END,
               '{}'::jsonb
        FROM (SELECT subscriber_id, last, subscriber_id %% 97 = 0 AS waits,
                     CASE WHEN subscriber_id %% 97 = 0 THEN %(now)s - (subscriber_id %% 50 + 5) * interval '1 minute' ELSE last END AS signal_at
              FROM (SELECT subscriber_id, max(updated_at) AS last FROM newsletter_vote
                    WHERE subscriber_id > %(base)s GROUP BY subscriber_id) AS voters) AS v
        ON CONFLICT (subscriber_id) DO NOTHING
        """,
        p,
    )
    _execute(
        """
        INSERT INTO newsletter_followedauthor (subscriber_id, name, key, created_at)
        SELECT id, 'Yann LeCun', 'yann lecun', created_at FROM subscriptions_subscriber WHERE id > %(base)s AND id %% 25 = 0
        """,
        p,
    )
    _execute(
        """
        INSERT INTO newsletter_seedpaper (subscriber_id, arxiv_id, paper_id, created_at)
        SELECT id, '2612.' || lpad((id %% 100000)::text, 5, '0'), NULL, created_at
        FROM subscriptions_subscriber WHERE id > %(base)s AND id %% 50 = 0
        """,
        p,
    )
    _execute("UPDATE subscriptions_subscriber SET outside_topics = true WHERE id > %(base)s AND id %% 8 = 0", p)
    _execute(
        """
        INSERT INTO subscriptions_consentevent (subscriber_id, kind, created_at, ip_address, user_agent, details)
        SELECT id, 'preferences', at, '192.0.2.1'::inet, 'Seed/1.0',
               jsonb_build_object('method', 'not-interested link', 'changes', jsonb_build_object('topics', '{}'::jsonb))
        FROM (SELECT id, confirmed_at + ((id * 13) %% 40 + 1) * interval '1 day' + interval '2 hours' AS at
              FROM subscriptions_subscriber WHERE id > %(base)s AND confirmed_at IS NOT NULL AND id %% 40 = 3) AS leaves
        WHERE at <= %(now)s
        """,
        p,
    )
