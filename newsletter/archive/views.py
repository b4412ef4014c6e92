"""The archive's pages: the index of days, a day's trending papers and a topic's papers.
Each is public, cached and conditional (caching.archive_page); none reads a subscriber."""

from datetime import date

from django.core.paginator import InvalidPage, Paginator
from django.http import Http404
from django.shortcuts import render

from newsletter.app_settings import app_settings

from . import queries
from .caching import NOT_A_PAGE, archive_page, page_number
from .papers import TITLE_CHARS, clean_text, present
from .state import state_of

# Papers of each day listed on the index of days.
TOP_OF_THE_DAY = 3


def _page(request, object_list, per_page: int):
    """The page `?page=` asks for; 404 for one that is not a plain number or out of range."""
    number = page_number(request)
    if number == NOT_A_PAGE:
        raise Http404("No such page.")
    try:
        return Paginator(object_list, per_page).page(number)
    except InvalidPage:
        raise Http404("No such page.") from None


def _render(request, template: str, context: dict):
    # The page is cached and shown to everyone: a flash message meant for one visitor (base.html
    # shows them) must not be rendered into it, nor consumed by it.
    return render(request, template, {**context, "messages": ()})


@archive_page
def index(request):
    state = state_of(request)
    page = _page(request, queries.trending_days(), app_settings.ARCHIVE_DAYS_PER_PAGE)
    days = list(page.object_list)
    top = queries.top_titles([d.run_id for d in days], max_rank=TOP_OF_THE_DAY)
    for d in days:
        d.top = [clean_text(title, TITLE_CHARS) for title in top.get(d.run_id, [])]
    return _render(request, "archive/index.html", {"page": page, "days": days, "topics": state.topics})


@archive_page
def day(request, day):
    try:
        day = date.fromisoformat(day)
    except ValueError:
        raise Http404("No such day.") from None
    run = queries.run_of_day(day)
    if run is None:
        raise Http404("Nothing was archived that day.")
    state = state_of(request)
    ranked = queries.ranked_papers([run.pk], state.topic_ids)
    papers = present([paper for *_, paper in ranked], state.topics_by_id,
                     ranks={paper.pk: (rank, upvotes) for _, rank, upvotes, paper in ranked})
    previous_day, next_day = queries.neighbour_days(day)
    context = {"day": day, "papers": papers, "previous_day": previous_day, "next_day": next_day, "topics": state.topics}
    return _render(request, "archive/day.html", context)


@archive_page
def topic(request, slug):
    state = state_of(request)
    topic = state.topic(slug)
    page = _page(request, queries.newest_paper_ids(topic.pk), app_settings.ARCHIVE_PAPERS_PER_PAGE)
    papers = present(queries.papers_by_id(page.object_list, state.topic_ids), state.topics_by_id)
    return _render(request, "archive/topic.html", {"topic": topic, "page": page, "papers": papers, "topics": state.topics})
