"""Content-Security-Policy: the public pages run only our own static scripts, load nothing from elsewhere and
cannot be framed; the admin gets a policy of its own (its scripts are its own static files);
the web copy of a digest keeps its stricter one."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from subscriptions import tokens

from .helpers import make_subscriber, preferences_path, unsubscribe_path
from .test_browser_flow import chromium  # noqa: F401  (the real Chromium, for the last test)

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, str]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


def public_pages(reader) -> dict[str, str]:
    confirm = tokens.make_token(reader, tokens.CONFIRM, {"topics": ["agents"], "frequency": "daily"})
    return {
        "sign-up": "/",
        "preferences": preferences_path(reader),
        "unsubscribe": unsubscribe_path(reader),
        "confirm": reverse("subscriptions:confirm", args=[confirm]),
        "invalid link": "/preferences/1.forged/",
        "not found": "/no-such-page/",
    }


def test_every_public_page_forbids_scripts_framing_and_foreign_forms(topics):
    reader = make_subscriber(topics=[topics["agents"]])
    for name, path in public_pages(reader).items():
        response = Client().get(path)
        policy = directives(response)
        assert policy.get("default-src") == "'none'", name
        assert policy.get("script-src") == "'self'", name  # our static files only: no inline script, nothing from elsewhere
        assert policy.get("style-src") == "'unsafe-inline'", name  # base.html's <style>, no stylesheet files
        assert policy.get("form-action") == "'self'", name
        assert policy.get("frame-ancestors") == "'none'", name
        assert policy.get("base-uri") == "'none'", name


def test_answers_to_posts_carry_the_policy_too(topics):
    reader = make_subscriber(topics=[topics["agents"]])
    response = Client().post(unsubscribe_path(reader))
    assert response.status_code == 200
    assert directives(response)["default-src"] == "'none'"
    limited = Client().post("/", {"email": "not-an-address"})
    assert limited.status_code == 400 and directives(limited)["default-src"] == "'none'"


def test_the_digest_page_keeps_its_own_stricter_policy(topics, make_scrape):
    from django.core import mail

    from newsletter.tasks.digests import dispatch_now

    from .helpers import path_of
    from .test_digest_pages import papers, view_url_in

    make_scrape(papers())
    make_subscriber("web-copy@example.org", topics=[topics["agents"]])
    dispatch_now(ignore_hour=True)
    [message] = mail.outbox
    response = Client().get(path_of(view_url_in(message)))
    assert response.status_code == 200
    policy = directives(response)
    assert policy["default-src"] == "'none'" and policy["form-action"] == "'none'"  # the view's, not the site's


def test_the_admin_runs_only_its_own_scripts(admin_client):
    for path in ("/admin/login/", "/admin/", "/admin/subscriptions/subscriber/"):
        response = admin_client.get(path, follow=True)
        assert response.status_code == 200, path
        policy = directives(response)
        assert policy["script-src"] == "'self'", path
        assert "unsafe" not in policy["script-src"]
        assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'", path
        # The digest preview shows the email in a sandboxed srcdoc frame, which inherits this policy.
        assert "https:" in policy["img-src"] and "'unsafe-inline'" in policy["style-src"], path


# What Chromium reports when the policy blocks something: the page's own events and console errors.
RECORD_VIOLATIONS = """
window.__blocked = [];
document.addEventListener('securitypolicyviolation', e => window.__blocked.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.mark.browser
def test_real_chromium_blocks_nothing_the_pages_need(chromium, transactional_db, live_server, topics, make_scrape):
    """The policy holds in a real browser without breaking the pages: the public pages' inline
    <style> applies, and the admin's own scripts run (its changelist builds the action bar),
    as does its digest preview (a srcdoc frame under the admin's policy)."""
    from .test_digest_pages import papers

    make_scrape(papers())
    get_user_model().objects.create_superuser("csp-admin", "csp-admin@example.org", "csp-admin-password")
    reader = make_subscriber(topics=[topics["agents"]])
    context = chromium.new_context(base_url=live_server.url)
    try:
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        console_errors = []
        page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
        blocked = {}
        for name, path in (("sign-up", "/"), ("preferences", preferences_path(reader)), ("admin login", "/admin/login/")):
            page.goto(path)
            blocked[name] = page.evaluate("window.__blocked")
            if name != "admin login":
                # base.html's <style> applied: the page background is --bg, not the browser's white.
                assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 246, 247)", name
        page.fill("#id_username", "csp-admin")
        page.fill("#id_password", "csp-admin-password")
        page.click("input[type=submit]")
        page.goto("/admin/subscriptions/subscriber/")
        page.wait_for_load_state("networkidle")
        blocked["admin changelist"] = page.evaluate("window.__blocked")
        # actions.js ran: it counts the selected rows into the action bar.
        assert page.locator(".action-counter").count() == 1 and page.locator(".action-counter").inner_text().strip()
        for name, path in (("admin index", "/admin/"), ("digest preview", reverse("admin:newsletter_delivery_preview", args=[reader.pk]))):
            response = page.goto(path)
            assert response.status == 200, name
            blocked[name] = page.evaluate("window.__blocked")
    finally:
        context.close()
    assert blocked == {name: [] for name in blocked}
    assert [e for e in console_errors if "Content Security Policy" in e] == []
