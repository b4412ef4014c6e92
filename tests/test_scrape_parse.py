"""Reading papers out of the real fixtures (all three schema generations, the page's props and
its cards), validation of bad records, and property tests: the parser returns papers or raises
ScrapeError, never anything else."""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from newsletter.scraping import ScrapeError
from newsletter.scraping.parse import ARXIV_ID_RE, ParseResult
from newsletter.sources.huggingface import parse, parse_api, parse_html

from .support.hf_server import API_FILES, HOSTILE_API, SAMPLE_PAGE, fixture_bytes, fixture_items

SAMPLE_ITEMS = "api_daily_papers_2026-08-21.json"  # what the sample page embeds


def expected(items):
    """What the source says, read straight from the JSON: (id, title, authors, upvotes)."""
    return [
        (
            item["paper"]["id"],
            " ".join(item["paper"]["title"].split()),
            [a["name"] for a in item["paper"]["authors"]],
            item["paper"]["upvotes"],
        )
        for item in items
    ]


def got(result: ParseResult):
    return [(p.arxiv_id, p.title, p.authors, p.upvotes) for p in result.papers]


def page_without_props(html: str) -> str:
    stripped, count = re.subn(r' data-props="\{&quot;canSubmit.*?"(?=>)', "", html, flags=re.S)
    assert count == 1
    return stripped


def page_without_cards(html: str) -> str:
    return re.sub(r"<article.*?</article>", "", html, flags=re.S)


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_every_paper_of_each_real_api_file(path):
    items = fixture_items(path)
    result = parse(fixture_bytes(path), "application/json")
    assert result.parser == "api"
    assert result.skipped == 0 and result.warnings == []
    assert got(result) == expected(items)
    assert len(result.papers) == len(items)


def test_schema_generations_fill_what_they_have():
    old = parse(fixture_bytes("api_daily_papers_2024-03-12.json")).papers[0].fields
    assert old["ai_summary"] == "" and old["ai_keywords"] == [] and old["organization"] == ""
    assert old["thumbnail"].startswith("https://cdn-uploads.huggingface.co/")  # item.mediaUrl
    # 2024: the item's publishedAt is when it was posted to the daily page.
    assert old["featured_at"].isoformat() == "2024-03-12T02:51:25.097000+00:00"
    assert old["num_comments"] == 3

    mid = parse(fixture_bytes("api_daily_papers_2025-03-12.json")).papers[0].fields
    assert mid["ai_keywords"][0] == "track-decoupled next-token prediction"
    assert mid["featured_at"] is None  # item.publishedAt is 4 hours *before* the paper's here

    june = {p.arxiv_id: p.fields for p in parse(fixture_bytes("api_daily_papers_2025-06-17.json")).papers}
    minimax = june["2506.13585"]
    assert minimax["title"] == "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention"
    assert minimax["github_repo"] == "https://github.com/MiniMax-AI/MiniMax-M1"
    assert minimax["project_page"] == "https://huggingface.co/MiniMaxAI/MiniMax-M1-80k"
    assert minimax["featured_at"].isoformat() == "2025-06-17T00:48:14.831000+00:00"
    assert "\n" not in minimax["abstract"]

    new = parse(fixture_bytes("api_daily_papers_2026-08-21.json")).papers[0].fields
    assert new["organization"] == "Google"
    assert new["github_stars"] == 8
    assert new["published_at"].isoformat() == "2026-08-20T00:00:00+00:00"


def test_sample_page_reads_the_embedded_props():
    result = parse(fixture_bytes(SAMPLE_PAGE), "text/html; charset=utf-8")
    assert result.parser == "props"
    assert got(result) == expected(fixture_items(SAMPLE_ITEMS))


def test_page_without_props_falls_back_to_the_cards():
    html = page_without_props(SAMPLE_PAGE.read_text())
    result = parse_html(html)
    assert result.parser == "cards"
    assert "no [data-target" in result.warnings[0]
    source = expected(fixture_items(SAMPLE_ITEMS))
    # Cards carry id, title, AI summary, date and upvotes; not the authors.
    assert [(p.arxiv_id, p.title, p.upvotes) for p in result.papers] == [(i, t, u) for i, t, _, u in source]
    assert all(p.authors is None for p in result.papers)
    first = result.papers[0].fields
    assert first["ai_summary"].startswith("EnvHarness and EnvRigger dynamically reshape")
    assert first["published_at"].isoformat() == "2026-08-20T00:00:00+00:00"


def test_truncated_props_fall_back_to_the_cards():
    html = SAMPLE_PAGE.read_text()
    start = html.index('data-props="{&quot;canSubmit')
    end = html.index('">', start)
    truncated = html[: start + (end - start) // 2] + html[end:]
    result = parse_html(truncated)
    assert result.parser == "cards"
    assert "not valid JSON" in result.warnings[0]
    assert len(result.papers) == 17


def test_card_classes_may_change():
    html = SAMPLE_PAGE.read_text().replace("font-semibold text-orange-500", "votes-x1")
    result = parse_html(page_without_props(html))
    assert [p.upvotes for p in result.papers] == [i["paper"]["upvotes"] for i in fixture_items(SAMPLE_ITEMS)]


def test_page_with_neither_props_nor_cards_is_a_scrape_error():
    html = page_without_cards(page_without_props(SAMPLE_PAGE.read_text()))
    with pytest.raises(ScrapeError, match="no valid paper"):
        parse(html)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "<html><body><h1>Just a moment...</h1></body></html>",  # a bot challenge page
        "[]",
        "{}",
        '{"error": "rate limited"}',
        '[{"paper": {"id": "2608.1234',  # truncated JSON
        "[" * 100_000,  # absurd nesting
        "\x00\xff\xfe",
    ],
)
def test_no_papers_is_a_scrape_error(body):
    with pytest.raises(ScrapeError):
        parse(body)


def test_truncated_api_json_is_a_scrape_error():
    body = fixture_bytes("api_daily_papers_2026-05-08.json")
    with pytest.raises(ScrapeError, match="not valid JSON"):
        parse(body[: len(body) // 2], "application/json")


def test_bad_records_are_skipped_with_a_warning_naming_them():
    result = parse_api(fixture_bytes(HOSTILE_API))
    assert [p.arxiv_id for p in result.papers] == ["2609.00001", "2609.00002"]
    assert result.skipped == 3
    assert "record 3: the arXiv id is not valid" in result.warnings
    assert "record 4: 2609.00004: no upvote count" in result.warnings
    assert "record 5: 2609.00005: empty title" in result.warnings


def test_scraped_text_is_kept_as_text_and_unsafe_links_dropped():
    paper = parse_api(fixture_bytes(HOSTILE_API)).papers[0]
    assert paper.title == "<script>alert('xss')</script> Agents & Tools for LLM Agents"
    assert paper.authors == ["Ada <b>Lovelace</b> & Co", "Bob \"Tables\" O'Neil"]
    assert paper.fields["organization"] == "R&D <Lab>"
    assert paper.fields["github_repo"] == ""  # javascript: URL refused
    # A valid http(s) URL is kept as it is; templates escape it where it is shown.
    assert paper.fields["project_page"] == "https://example.org/?a=1&b=<2>"


def test_validation_of_ids_numbers_and_duplicates():
    item = fixture_items(SAMPLE_ITEMS)[0]

    def with_paper(**changes):
        copy = json.loads(json.dumps(item))
        copy["paper"].update(changes)
        return copy

    items = [
        with_paper(id="2608.19880v2"),  # version suffix dropped
        with_paper(id="2608.19880"),  # now a duplicate
        with_paper(id="2608.1"),
        with_paper(id="2608.00001", upvotes=-1),
        with_paper(id="2608.00002", upvotes=True),
        with_paper(id="2608.00003", upvotes=10**9),
        with_paper(id="2608.00004", githubStars="many", title="x" * 5000),
        with_paper(id="2608.00005", githubStars="many", title="Fine\x00 title\ud800"),
        "not an item",
        {"paper": "not a paper"},
    ]
    result = parse_api(json.dumps(items))
    assert [p.arxiv_id for p in result.papers] == ["2608.19880", "2608.00005"]
    assert result.papers[1].title == "Fine title?"
    assert result.papers[1].fields["github_stars"] is None
    assert result.skipped == 8
    assert any("2608.19880 is listed twice" in w for w in result.warnings)
    assert any("count -1 out of range" in w for w in result.warnings)
    assert any("no upvote count" in w for w in result.warnings)


# --- property tests -------------------------------------------------------------------------


def assert_valid(result):
    assert isinstance(result, ParseResult)
    assert result.papers
    for paper in result.papers:
        assert ARXIV_ID_RE.match(paper.arxiv_id)
        assert paper.title.strip() and "\x00" not in paper.title
        assert isinstance(paper.upvotes, int) and paper.upvotes >= 0


def parse_or_scrape_error(body, content_type=""):
    try:
        result = parse(body, content_type)
    except ScrapeError:
        return None
    assert_valid(result)
    return result


@hyp_settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_input_gives_papers_or_scrape_error(body):
    parse_or_scrape_error(body)
    parse_or_scrape_error(body, "application/json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)


@hyp_settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_gives_papers_or_scrape_error(value):
    parse_or_scrape_error(json.dumps(value), "application/json")
    parse_or_scrape_error(json.dumps([value]), "application/json")
    parse_or_scrape_error(json.dumps({"dailyPapers": [{"paper": value}]}), "application/json")


PAPER_FIELDS = ["id", "title", "upvotes", "authors", "summary", "ai_summary", "ai_keywords", "publishedAt",
                "submittedOnDailyAt", "githubRepo", "githubStars", "projectPage", "organization"]


@hyp_settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PAPER_FIELDS), json_values), min_size=1, max_size=6))
def test_real_items_with_mutated_fields_give_papers_or_scrape_error(mutations):
    items = fixture_items(SAMPLE_ITEMS)[:3]
    for field_name, value in mutations:
        items[0]["paper"][field_name] = value
    result = parse_or_scrape_error(json.dumps(items), "application/json")
    assert result is not None  # the two untouched items are always there
    assert [p.arxiv_id for p in result.papers][-2:] == [i["paper"]["id"] for i in items[1:]]


SAMPLE_HTML = SAMPLE_PAGE.read_text()


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(SAMPLE_HTML)), st.integers(0, 2000), st.text(max_size=20)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_mutated_pages_give_papers_or_scrape_error(edits, truncate):
    """Cut, delete and splice the real sample page anywhere (inside the props, a card, a tag)."""
    html = SAMPLE_HTML
    for position, length, insert in edits:
        html = html[:position] + insert + html[position + length:]
    if truncate:
        html = html[: edits[0][0]]
    parse_or_scrape_error(html, "text/html")
    parse_or_scrape_error(html.encode("utf-8", "surrogatepass"))


# --- merge syntax and links (issue 8, finding 1) ------------------------------------------
# What the batch providers substitute per recipient: Mailgun %recipient.KEY% and its own
# %recipient_email% / %unsubscribe_url% variables, SendGrid substitution keys (-key- in its
# docs) and {{ }} handlebars. Their documentation does not say matching is case-sensitive.

FORGERIES = [
    "%recipient.preferences_url%",
    "%RECIPIENT.PREFERENCES_URL%",
    "%Recipient.h:List-Unsubscribe%",
    "%recipient_email%",
    "%UNSUBSCRIBE_URL%",
    "-unsubscribe_url-",
    "-VIEW_URL-",
    "{{preferences_url}}",
    "{{ PREFERENCES_URL }}",
]


def item_with(**paper_fields):
    item = json.loads(json.dumps(fixture_items(SAMPLE_ITEMS)[0]))
    item["paper"].update(paper_fields)
    return item


def parsed_fields(**paper_fields):
    [paper] = parse_api(json.dumps([item_with(**paper_fields)])).papers
    return paper.fields


@pytest.mark.parametrize(
    "value, stored",
    [
        ("https://github.com/MiniMax-AI/MiniMax-M1", "https://github.com/MiniMax-AI/MiniMax-M1"),
        ("http://github.com/owner/repo", "https://github.com/owner/repo"),
        ("https://www.github.com/owner/repo.name/", "https://github.com/owner/repo.name"),
        ("https://github.com/owner/repo.git", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo/tree/main/src#readme", "https://github.com/owner/repo"),
        ("https://attacker.example/collect?p=%recipient.preferences_url%", ""),
        ("https://attacker.example/owner/repo", ""),
        ("https://gitlab.com/owner/repo", ""),
        ("https://github.com.attacker.example/owner/repo", ""),
        ("https://gist.github.com/owner/0123abcd", ""),
        ("https://user:secret@github.com/owner/repo", ""),
        ("https://github.com:8443/owner/repo", ""),
        ("https://github.com/owner", ""),
        ("https://github.com/owner/repo?next=%RECIPIENT.UNSUBSCRIBE_URL%", ""),
        ("https://github.com/owner/-preferences_url-", ""),
        ("https://github.com/{{preferences_url}}/repo", ""),
        ("https://github.com/-owner/repo", ""),
        ("https://github.com/owner/..", ""),
        ("javascript:alert(1)//https://github.com/x/y", ""),
        ("ftp://github.com/owner/repo", ""),
    ],
)
def test_github_link_only_as_a_repository_on_github(value, stored):
    assert parsed_fields(githubRepo=value)["github_repo"] == stored


@pytest.mark.parametrize(
    "value, stored",
    [
        ("https://bridgevla.github.io/", "https://bridgevla.github.io/"),
        ("https://doi.org/10.5334/tismir.333", "https://doi.org/10.5334/tismir.333"),
        ("https://example.org/a%20b", "https://example.org/a%20b"),
        ("http://example.org/", ""),
        ("https://user@example.org/", ""),
        ("https://user:pw@example.org/", ""),
        ("javascript:alert(1)", ""),
        ("data:text/html,hi", ""),
        ("https://attacker.example/c?p=%recipient.preferences_url%", ""),
        ("https://attacker.example/c?p=%RECIPIENT.PREFERENCES_URL%", ""),
        ("https://attacker.example/%recipient_email%", ""),
        ("https://attacker.example/c?u={{unsubscribe_url}}", ""),
        ("https://attacker.example/c-view_url-", ""),
    ],
)
def test_project_page_and_thumbnail_only_as_plain_https_urls(value, stored):
    fields = parsed_fields(projectPage=value)
    assert fields["project_page"] == stored
    item = item_with()
    item["thumbnail"] = value
    [paper] = parse_api(json.dumps([item])).papers
    assert paper.fields["thumbnail"] == stored


@pytest.mark.parametrize("forgery", FORGERIES)
def test_scraped_text_keeps_no_merge_syntax(forgery):
    fields = parsed_fields(
        title=f"Agents {forgery} at scale", summary=f"An abstract {forgery}.", ai_summary=f"Summary {forgery}",
        ai_keywords=[f"kw {forgery}"], authors=[{"name": f"Ada {forgery}"}], organization=f"Lab {forgery}",
    )
    texts = [fields["title"], fields["abstract"], fields["ai_summary"], *fields["ai_keywords"], *fields["authors"],
             fields["organization"]]
    for text in texts:
        # The reader sees the same characters (a zero-width space is invisible) ...
        assert forgery in text.replace("\u200b", "")
        # ... but no provider finds a tag in them, whatever the case.
        assert not re.search(r"%recipient|%unsubscribe_url%|-(unsubscribe|view)_url-|\{\{", text, re.I), text


def test_warnings_and_errors_quote_nothing_the_source_sent():
    """Warnings end up in the run's error and the admins' email: they name the record (its
    position, a valid arXiv id) but never repeat what the source wrote."""
    secret = "SECRET-FROM-THE-BODY"
    items = [{"paper": {"id": secret, "title": "t", "upvotes": 1}}, {"paper": {"id": "2608.00001", "title": "", "upvotes": 1}},
             {"paper": {"id": "2608.00002", "title": "t", "upvotes": secret}}]
    with pytest.raises(ScrapeError) as api_error:
        parse_api(json.dumps(items))
    cards = f'<article><h3><a href="/papers/{secret}">A title</a></h3><div>3</div></article>'
    with pytest.raises(ScrapeError) as page_error:
        parse_html(f"<html><body>{cards}</body></html>")
    with pytest.raises(ScrapeError) as json_error:
        parse_api(f'[{{"paper": {{"id": "{secret}"')
    for message in (str(api_error.value), str(page_error.value), str(json_error.value)):
        assert secret not in message and "SECRET" not in message.upper(), message
    assert "record 1: the arXiv id is not valid" in str(api_error.value)
    assert "card 1: the link is not a paper link" in str(page_error.value)


def test_ordinary_text_and_links_are_left_alone():
    fields = parsed_fields(title="Up-to-date agents: 50% fewer steps, {a} and {b}", githubRepo="https://github.com/o/up-to-date-agents",
                           projectPage="https://example.org/caf%C3%A9-up-to-date/")
    assert fields["title"] == "Up-to-date agents: 50% fewer steps, {a} and {b}"
    assert fields["github_repo"] == "https://github.com/o/up-to-date-agents"
    # A percent-encoded letter reads like the start of a tag: such a project page is dropped.
    assert fields["project_page"] == ""
