"""Internal tuning of the newsletter app, with the defaults it ships (the django-allauth way).

Each name can still be overridden in a settings module (`DIGEST_RETRY_BACKOFF = 1` in your
own settings, or with pytest-django's `settings` fixture), and is read when it is used, never
cached. They are not environment variables: the settings an operator sets are in
settings/base.py, documented in the README and .env.example.

    from newsletter.app_settings import app_settings
    app_settings.DIGEST_SEND_TIMEOUT
"""

from django.conf import settings


class Setting:
    """One tuning knob: `settings.<NAME>` if the project set it, else the default here."""

    def __init__(self, default, doc: str):
        self.default = default
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return getattr(settings, self.name, self.default)


class AppSettings:
    # --- Digests ----------------------------------------------------------------------------
    DIGEST_SEND_TIMEOUT = Setting(30.0, "Seconds to wait for the provider (API call or SMTP) before counting the call as failed.")
    DIGEST_CLAIM_TIMEOUT = Setting(600, "Without PostgreSQL's advisory locks: a `sending` claim older than this (s) is taken over.")
    DIGEST_REQUEUE_AFTER = Setting(1800, "Pending deliveries queued longer ago than this (s) are queued again by the dispatcher.")
    DIGEST_GIVE_UP_AFTER_DAYS = Setting(2, "Pending deliveries older than this many days are given up (marked failed).")
    DIGEST_RETRY_BACKOFF = Setting(5.0, "Transient send errors: Celery's exponential backoff starts at this many seconds...")
    DIGEST_RETRY_BACKOFF_MAX = Setting(600.0, "...is capped at this many (a provider's Retry-After too)...")
    DIGEST_MAX_RETRIES = Setting(10, "...and a chunk is retried at most this many times (then the dispatcher queues it anew).")
    DIGEST_SHARED_MIN = Setting(
        16, "A digest that at least this many readers of a chunk share goes out in calls of its own (one content, "
        "per-recipient links); those shared by fewer go out in personal batches (chunks.py)...",
    )
    DIGEST_PERSONAL_MIN = Setting(
        8, "...when a chunk has at least this many of them of one kind (daily, weekly); fewer each get their own call.",
    )
    DIGEST_PERSONAL_CALL_BYTES = Setting(
        4_000_000, "At most about this many bytes of merge values in one personal batch call (below the provider's own "
        "limit): a worker holds each call's values two or three times over while it is built and sent, so this bounds its "
        "memory (10 MB calls: ~350 MB a worker; 4 MB: ~280 MB). Smaller calls are just more of them.",
    )
    DIGEST_RANKING = Setting(
        "newsletter.personal.ranking.PersonalRanking",
        "Dotted path of the class that orders each reader's papers (newsletter/digests/ranking.py); "
        "the default learns each reader (newsletter/personal/), `newsletter.digests.ranking.TopicScoreAndUpvotes` does not.",
    )
    PERSONAL_MODEL_WEIGHT = Setting(
        3.0, "How far a reader's model (log-odds) moves a paper against ln(topic score x log2(2 + upvotes)).",
    )
    PERSONAL_TRAIN_BATCH = Setting(500, "Readers' models trained per batch (a handful of queries each).")
    PERSONAL_TRAIN_BEFORE_SENDING = Setting(
        200, "A chunk's readers whose model is older than what they told us (a vote minutes before their digest, "
        "its retraining still queued) are trained before their digests are chosen, up to this many per chunk "
        "(~2 ms each); the rest keep their stored model until the queued task or the hourly sweep.",
    )
    FEEDBACK_RATE_LIMIT = Setting("60/m", "Votes, undos and topic changes by one reader (django-ratelimit syntax).")
    FEEDBACK_BAD_TOKEN_RATE_LIMIT = Setting("30/m", "Vote pages asked for with a bad token from one IP, before they are refused with 429.")

    # --- What readers tell us on their preferences page (subscriptions/reading.py) ----------
    # Bounds on what one preferences link can store: the link is the only credential.
    READER_MAX_FOLLOWED_AUTHORS = Setting(50, "Authors one reader may follow.")
    READER_MAX_SEED_PAPERS = Setting(50, "Seed papers one reader may name.")
    READER_CHANGES_RATE_LIMIT = Setting(
        "120/h", "Changes one reader may make to follows, seed papers, likes and own words (django-ratelimit syntax)."
    )

    # --- Scraping ---------------------------------------------------------------------------
    PAPER_SOURCES = Setting(
        ["newsletter.sources.huggingface.HuggingFace"],
        "Dotted paths of the paper sources (newsletter/sources/, ADDING_A_SOURCE.md); the first "
        "one that knows a URL reads it.",
    )
    SCRAPE_CONNECT_TIMEOUT = Setting(10.0, "Seconds to connect to the source.")
    SCRAPE_READ_TIMEOUT = Setting(30.0, "Seconds the source may stay silent.")
    SCRAPE_TOTAL_TIMEOUT = Setting(120.0, "Seconds a whole response may take (a slow trickle is cut off).")
    SCRAPE_RETRIES = Setting(4, "Retries on connection errors, read time-outs, 429 and 5xx...")
    SCRAPE_BACKOFF_FACTOR = Setting(2.0, "...after factor * 2**n seconds...")
    SCRAPE_BACKOFF_MAX = Setting(120.0, "...capped at this...")
    SCRAPE_BACKOFF_JITTER = Setting(1.0, "...plus up to this many random seconds...")
    SCRAPE_RETRY_AFTER_MAX = Setting(300, "...or the source's Retry-After, capped at this.")
    SCRAPE_OBEY_ROBOTS = Setting(True, "Honour robots.txt (off only for a source that is yours).")
    SCRAPE_ROBOTS_CACHE_SECONDS = Setting(24 * 3600, "How long a robots.txt is kept.")
    SCRAPE_ROBOTS_MAX_BYTES = Setting(512 * 1024, "Largest robots.txt read.")
    SCRAPE_LOCK_TIMEOUT = Setting(30 * 60, "The Redis lock that keeps two scrapes from running at once expires after this (s).")

    # --- Public archive and feeds (newsletter/archive/) ----------------------------------------
    ARCHIVE_DAYS_PER_PAGE = Setting(30, "Days per page of /archive/.")
    ARCHIVE_PAPERS_PER_PAGE = Setting(25, "Papers per page of /topics/<slug>/.")
    ARCHIVE_FEED_ENTRIES = Setting(50, "Entries of each Atom feed: the papers that trended most recently.")
    ARCHIVE_SAMPLE_PAPERS = Setting(3, "Papers of the latest good scrape shown as a sample on the sign-up page.")
    ARCHIVE_CACHE_SECONDS = Setting(
        600, "How long a rendered archive page or feed is kept (a new scrape or topic assignment replaces it at once).",
    )
    ARCHIVE_BROWSER_MAX_AGE = Setting(300, "Cache-Control max-age (s) of archive pages and feeds; then they revalidate (ETag).")

    @property
    def SCRAPE_USER_AGENT(self) -> str:
        """Names SCRAPE_CONTACT_URL so the source's operators can reach whoever runs the scraper."""
        return getattr(settings, "SCRAPE_USER_AGENT", f"TrendingPapersDigest/1.0 (+{settings.SCRAPE_CONTACT_URL})")

    @classmethod
    def knobs(cls) -> dict[str, Setting]:
        """Every Setting by name (see from_environ)."""
        return {name: value for name, value in vars(cls).items() if isinstance(value, Setting)}


app_settings = AppSettings()


def from_environ() -> dict:
    """The knobs set as environment variables, typed like their defaults. Only for the processes
    that tests, chaos scripts and benches start (settings/test.py, tests/support/tuned_settings.py),
    so they can shorten time-outs and backoffs from outside; the product's settings never read them."""
    import os

    import environ

    env = environ.Env()
    cast = {bool: env.bool, int: env.int, float: env.float, str: env.str, list: env.list}
    return {
        name: cast[type(knob.default)](name)
        for name, knob in AppSettings.knobs().items()
        if name in os.environ
    }
