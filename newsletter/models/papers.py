"""The paper store: papers keyed by arXiv id, each scrape run, each paper's rank on that
run (trending history) and each paper's score per topic."""

from django.db import models
from django.db.models import OuterRef, Subquery
from django.utils.timezone import now

from newsletter import sources


class PaperQuerySet(models.QuerySet):
    def from_run(self, run):
        """The papers a scrape run saw, in the order the page listed them."""
        return self.filter(ranks__run=run).order_by("ranks__rank")

    def from_last_good_scrape(self, kind=None):
        """The papers of the newest successful scrape (empty if there is none): what a digest
        may be built from. A failed run never counts."""
        run = ScrapeRun.objects.last_good(kind=kind)
        return self.from_run(run) if run else self.none()

    def sources_of(self, paper_ids) -> dict:
        """paper id -> its paper source (newsletter.sources): the one whose page listed it
        last; the default source for papers only ever loaded from a file. One query."""
        last_kind = (
            PaperRank.objects.filter(paper=OuterRef("pk"))
            .exclude(run__kind=sources.FILE_KIND)
            .order_by("-run__started_at", "-run_id")
            .values("run__kind")[:1]
        )
        rows = self.filter(pk__in=list(paper_ids)).annotate(kind=Subquery(last_kind)).values_list("pk", "kind")
        default = sources.default()
        return {pk: (sources.for_kind(kind) if kind else None) or default for pk, kind in rows}


class Paper(models.Model):
    arxiv_id = models.CharField(max_length=32, unique=True)
    title = models.TextField()
    abstract = models.TextField(blank=True)
    ai_summary = models.TextField(blank=True)
    ai_keywords = models.JSONField(default=list, blank=True)
    # Author names in the order the paper lists them.
    authors = models.JSONField(default=list, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    featured_at = models.DateTimeField(null=True, blank=True, help_text="When it was featured on the daily papers page.")
    upvotes = models.PositiveIntegerField(default=0)
    num_comments = models.PositiveIntegerField(default=0)
    github_repo = models.URLField(max_length=500, blank=True)
    github_stars = models.PositiveIntegerField(null=True, blank=True)
    project_page = models.URLField(max_length=500, blank=True)
    thumbnail = models.URLField(max_length=500, blank=True)
    organization = models.CharField(max_length=200, blank=True)
    first_seen_at = models.DateTimeField(default=now, db_index=True)
    last_seen_at = models.DateTimeField(default=now, db_index=True)
    topics = models.ManyToManyField("subscriptions.Topic", through="PaperTopicScore", related_name="papers")

    objects = PaperQuerySet.as_manager()

    class Meta:
        ordering = ["-upvotes", "arxiv_id"]

    def __str__(self):
        return f"{self.arxiv_id} {self.title[:80]}"

    @property
    def source(self):
        """The paper source whose page listed it last (newsletter.sources)."""
        return Paper.objects.sources_of([self.pk])[self.pk]

    @property
    def arxiv_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"


class ScrapeRunQuerySet(models.QuerySet):
    GOOD = ("ok", "not_modified")

    def good(self, kind=None):
        runs = self.filter(status__in=self.GOOD)
        return runs.filter(kind=kind) if kind else runs

    def last_good(self, kind=None):
        """The newest run that stored papers (OK) or confirmed them unchanged (304)."""
        return self.good(kind).order_by("-started_at", "-pk").first()


class ScrapeRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "OK"
        NOT_MODIFIED = "not_modified", "Not modified (304)"
        FAILED = "failed", "Failed"

    source = models.CharField(max_length=500)
    # The page kind read: one a registered paper source declares, or "file" (newsletter.sources;
    # no choices, so a new source needs no migration). Runs are compared ("far fewer papers than
    # last time") only with runs of the same kind.
    kind = models.CharField(max_length=sources.MAX_KIND_LENGTH, validators=[sources.validate_kind], db_index=True)
    started_at = models.DateTimeField(default=now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    etag = models.CharField(max_length=300, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    papers_found = models.PositiveIntegerField(default=0)
    papers_new = models.PositiveIntegerField(default=0)
    papers_updated = models.PositiveIntegerField(default=0)
    records_skipped = models.PositiveIntegerField(default=0)
    # Which reading of the page gave the papers: embedded props, server-rendered cards or API JSON.
    parser = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When the admins were mailed about this failure.")

    objects = ScrapeRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.source} @ {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def kind_label(self) -> str:
        return sources.kind_label(self.kind)


class PaperRank(models.Model):
    """Where a paper stood on one scrape run: the trending history."""

    run = models.ForeignKey(ScrapeRun, on_delete=models.CASCADE, related_name="ranks")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="ranks")
    rank = models.PositiveIntegerField()
    upvotes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run", "rank"]
        constraints = [models.UniqueConstraint(fields=["run", "paper"], name="paper_rank_once_per_run")]


class PaperTopicScore(models.Model):
    """A row means "this paper belongs to this topic" (newsletter.topic_assignment)."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="topic_scores")
    topic = models.ForeignKey("subscriptions.Topic", on_delete=models.CASCADE, related_name="paper_scores")
    # How sure the topic model is (a probability, 0-1); digests rank by it.
    score = models.FloatField()
    # The topic's phrases found in the paper, strongest first: the "why" in emails and reports.
    matched = models.JSONField(default=list, blank=True)
    # The paper's best topic (one per paper).
    primary = models.BooleanField(default=False)
    # The rest of the evidence: {"terms": the classifier's strongest words here,
    # "taught": true/false where an operator marked the paper in or out, "model": trained version}.
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-score"]
        constraints = [models.UniqueConstraint(fields=["paper", "topic"], name="paper_topic_score_unique")]
        indexes = [models.Index(fields=["topic", "-score"])]


class TopicExample(models.Model):
    """An operator's "teach this topic": this paper belongs (or does not belong) to this topic.
    It decides the paper's membership at once and is a training example for the topic model."""

    topic = models.ForeignKey("subscriptions.Topic", on_delete=models.CASCADE, related_name="examples")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="topic_examples")
    belongs = models.BooleanField(default=True, help_text="Unticked: the paper is an example of what the topic is not.")
    added_by = models.CharField(max_length=150, blank=True, editable=False)
    added_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["topic", "-added_at"]
        constraints = [models.UniqueConstraint(fields=["topic", "paper"], name="topic_example_once")]

    def __str__(self):
        return f"{self.paper.arxiv_id} {'in' if self.belongs else 'not in'} {self.topic}"


class TopicClassifier(models.Model):
    """A trained state of the topic model (newsletter.topic_model), newest version in use."""

    version = models.PositiveIntegerField(unique=True)
    trained_at = models.DateTimeField(default=now)
    # Hash of the topics' definitions and the examples it was trained on.
    fingerprint = models.CharField(max_length=32, db_index=True)
    # {"seed_papers": n, "operator_examples": n, "topics": {slug: {"in": n, "out": n}}, "seconds": s, "reason": ...}
    trained_on = models.JSONField(default=dict)
    state = models.JSONField()

    class Meta:
        ordering = ["-version"]

    def __str__(self):
        return f"topic model v{self.version} ({self.trained_at:%Y-%m-%d %H:%M})"
