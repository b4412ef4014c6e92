"""`{% latest_digest_sample %}`: the sign-up page's sample of the latest digest (the first
papers of the newest good scrape) and its links to the archive and the feed. The sign-up
view is not the archive's, so the sample comes as a tag; its HTML is cached on the same
state as the archive pages (the sign-up page itself is never cached: it holds a CSRF token)."""

from django import template
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from newsletter.app_settings import app_settings

from .. import queries
from ..papers import present
from ..state import ArchiveState

register = template.Library()


@register.simple_tag
def latest_digest_sample():
    state = ArchiveState.current()
    key = f"archive:sample:{app_settings.ARCHIVE_SAMPLE_PAPERS}:{state.fingerprint}"
    html = cache.get(key)
    if html is None:
        context = {"papers": [], "day": None}
        if state.run_id is not None:
            ranked = queries.ranked_papers([state.run_id], state.topic_ids, max_rank=app_settings.ARCHIVE_SAMPLE_PAPERS)
            context["papers"] = present([paper for *_, paper in ranked], state.topics_by_id,
                                        ranks={paper.pk: (rank, upvotes) for _, rank, upvotes, paper in ranked})
            context["day"] = timezone.localdate(state.run_started)
        html = render_to_string("archive/signup_sample.html", context)
        cache.set(key, html, app_settings.ARCHIVE_CACHE_SECONDS)
    # Our own template's output, every value in it autoescaped.
    return mark_safe(html)  # noqa: S308
