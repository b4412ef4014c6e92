"""The paper store in the admin: scraped text (titles with <script> and &) is shown escaped,
failed scrape runs stand out, scraped data is read-only; the topic report prints titles as
they are."""

import io

import pytest
from django.core.management import call_command

from newsletter.models import Paper, ScrapeRun
from newsletter.scraping.run import scrape_file

from .support.hf_server import HOSTILE_API

pytestmark = pytest.mark.django_db

RAW_TITLE = "<script>alert('xss')</script> Agents & Tools for LLM Agents"
ESCAPED_TITLE = "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt; Agents &amp; Tools for LLM Agents"


@pytest.fixture
def hostile(topics):
    run = scrape_file(HOSTILE_API)
    assert run.status == ScrapeRun.Status.OK
    return Paper.objects.get(arxiv_id="2609.00001")


def test_stored_as_text(hostile):
    assert hostile.title == RAW_TITLE
    assert hostile.authors[0] == "Ada <b>Lovelace</b> & Co"
    assert hostile.topics.filter(slug="agents").exists()


def test_paper_list_and_page_escape_scraped_text(admin_client, hostile):
    listing = admin_client.get("/admin/newsletter/paper/").content.decode()
    assert ESCAPED_TITLE in listing
    assert "<script>alert" not in listing

    page = admin_client.get(f"/admin/newsletter/paper/{hostile.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert ESCAPED_TITLE in html
    assert "<script>alert" not in html and "<b>Lovelace</b>" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "R&amp;D &lt;Lab&gt;" in html
    assert "Agents and tool use" in html  # the topic score inline
    assert 'href="https://arxiv.org/abs/2609.00001"' in html


def test_scraped_data_is_read_only(admin_client, hostile):
    assert admin_client.get("/admin/newsletter/paper/add/").status_code == 403
    before = Paper.objects.get(pk=hostile.pk).title
    admin_client.post(f"/admin/newsletter/paper/{hostile.pk}/change/", {"title": "edited"})
    assert Paper.objects.get(pk=hostile.pk).title == before
    assert admin_client.get("/admin/newsletter/scraperun/add/").status_code == 403


def test_failed_runs_stand_out_and_their_errors_are_escaped(admin_client, hostile, tmp_path):
    failed = scrape_file(tmp_path / "<script>alert(2)</script>.html")
    assert failed.status == ScrapeRun.Status.FAILED
    listing = admin_client.get("/admin/newsletter/scraperun/").content.decode()
    assert listing.count('class="scrape-failed"') == 1
    assert "FAILED" in listing
    assert "&lt;script&gt;alert(2)&lt;/script&gt;.html" in listing
    assert "<script>alert(2)" not in listing
    failed_only = admin_client.get("/admin/newsletter/scraperun/?status__exact=failed").content.decode()
    assert "1 scrape run" in failed_only
    page = admin_client.get(f"/admin/newsletter/scraperun/{failed.pk}/change/")
    assert page.status_code == 200 and "scrape-failed" in page.content.decode()


def test_rank_history_pages(admin_client, hostile):
    assert admin_client.get("/admin/newsletter/paperrank/").status_code == 200
    html = admin_client.get("/admin/newsletter/paperrank/?q=2609.00001").content.decode()
    assert "2609.00001 &lt;script&gt;" in html


def test_topic_report_prints_titles_literally(hostile):
    out = io.StringIO()
    call_command("topic_report", stdout=out)
    assert f"2609.00001  {RAW_TITLE}" in out.getvalue()
