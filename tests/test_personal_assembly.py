"""The shortcuts in assembling a reader's personal copy (rendering.PaperSection) give exactly
what the plain way gives: their papers' JSON spliced from the blocks' is json.dumps of the
papers, and the preheader cut from the titles' head is Truncator's cut of all of them."""

import json
import random
import re

import css_inline
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.text import Truncator

from newsletter.digests import chunks, rendering
from newsletter.encoded_json import EncodedStr
from newsletter.feedback import tokens as feedback_tokens

from .test_personal_sending import PAPERS


def test_a_sections_papers_carry_their_json_spliced_from_the_blocks(topics, make_scrape):
    make_scrape(PAPERS)
    pool = chunks.selection.paper_pool("daily")
    paper_ids = sorted(pool.upvotes)
    rnd = random.Random(5)
    for n in range(6):
        chosen = tuple(rnd.sample(paper_ids, rnd.randint(1, len(paper_ids))))
        # A note with what JSON escapes: quotes, a backslash, non-ASCII, an astral character.
        notes = {chosen[0]: 'Because you liked: "Ωmega" \\ 東京 <b>&</b> 😀'} if n % 2 else {}
        section = rendering.renderer.section(chosen, pool, "daily", [topics["agents"].pk, topics["code"].pk], notes)
        values = section.values({rendering.feedback_field(pk): feedback_tokens.make(7, 8, pk) for pk in chosen}, "30 Nov")
        for name in ("papers_html", "papers_text"):
            assert type(values[name]) is EncodedStr
            assert values[name].json == json.dumps(str(values[name]))
        assert values["papers_html"].count("More like this") == len(chosen)
        assert ('"Ωmega"' in values["papers_text"]) == bool(notes)


def test_tokens_json_would_escape_leave_the_papers_plain_strings(topics, make_scrape):
    make_scrape(PAPERS[:2])
    pool = chunks.selection.paper_pool("daily")
    paper_ids = tuple(sorted(pool.upvotes))
    assert len(paper_ids) == 2
    section = rendering.renderer.section(paper_ids, pool, "daily")
    values = section.values({rendering.feedback_field(pk): 'odd"token' for pk in paper_ids}, "30 Nov")
    assert type(values["papers_html"]) is str and 'odd"token' in values["papers_html"]


def test_the_preheader_is_truncators_cut_of_all_the_titles():
    rnd = random.Random(3)
    # ASCII, accents precomposed and not (a combining mark), wide characters, a title that
    # would change under NFC only past the head.
    pieces = ["Agents", "plan", "naïve", "nai\u0308ve", "東京", "“quotes”", "e\u0301", "x" * 60, "Zürich", "&<>"]
    for _ in range(400):
        titles = tuple(" ".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 12))) for _ in range(rnd.randint(1, 12)))
        assert rendering.preheader_for(titles) == escape(Truncator("; ".join(titles)).chars(rendering.PREHEADER_CHARS))


def declarations(style: str) -> list[tuple[str, str]]:
    return [tuple(part.strip() for part in d.split(":", 1)) for d in style.split(";") if d.strip()]


def test_compacted_styles_are_the_same_declarations(topics, make_scrape):
    from newsletter.models import Paper

    make_scrape(PAPERS)
    css, _ = rendering.renderer.css
    for paper in Paper.objects.all():
        html = css_inline.inline_fragment(
            render_to_string("emails/_digest_paper.html", rendering.paper_context(paper, ["Agents"], note="Because: x")), css)
        compact = rendering.compact_styles(html)
        styles, compact_styles = re.findall(r' style="([^"]*)"', html), re.findall(r' style="([^"]*)"', compact)
        assert len(styles) > 10 and len(compact_styles) == len(styles)
        assert [declarations(s) for s in compact_styles] == [declarations(s) for s in styles]
        assert re.sub(r' style="[^"]*"', "", compact) == re.sub(r' style="[^"]*"', "", html)
        assert len(compact) <= len(html) - len(styles)  # each loses its last ";" at least


def test_compacting_styles_leaves_text_alone():
    # css-inline writes quotes in text nodes as they are: text that looks like a style
    # attribute is still text, and stays as written.
    html = '<p class="summary" style="margin: 0 0 8px;">A title style="note: kept;" here</p>'
    assert rendering.compact_styles(html) == '<p class="summary" style="margin:0 0 8px">A title style="note: kept;" here</p>'
