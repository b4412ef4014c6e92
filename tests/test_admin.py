"""The Django admin, driven through the test client as a logged-in superuser: subscribers can
be searched, filtered and acted on (each action leaves a row in the consent log), topics are
editable, and the consent log can be read but never added to, changed or deleted."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from subscriptions.models import ConsentEvent, Subscriber, Topic

from .helpers import make_subscriber, preferences_path, unsubscribe_path, working_tokens_in

pytestmark = pytest.mark.django_db

SUBSCRIBERS = reverse("admin:subscriptions_subscriber_changelist")
TOPICS = reverse("admin:subscriptions_topic_changelist")
CONSENT_LOG = reverse("admin:subscriptions_consentevent_changelist")


@pytest.fixture
def staff(admin_client):
    """pytest-django's admin_client: a superuser, logged in."""
    return admin_client


@pytest.fixture
def people(topics):
    return {
        "ada": make_subscriber("ada@example.org", topics=[topics["agents"], topics["code"]]),
        "bo": make_subscriber("bo@example.net", topics=[topics["robotics"]]),
        "cy": make_subscriber("cy@example.org", status=Subscriber.Status.PENDING, topics=[topics["agents"]]),
        "di": make_subscriber("di@example.org", status=Subscriber.Status.UNSUBSCRIBED, topics=[topics["code"]]),
    }


def listed_emails(response) -> set[str]:
    assert response.status_code == 200
    return {s.email for s in response.context["cl"].result_list}


def run_action(client, action: str, *subscribers):
    return client.post(
        SUBSCRIBERS,
        {"action": action, ACTION_CHECKBOX_NAME: [s.pk for s in subscribers], "index": 0},
        follow=True,
    )


def test_anonymous_visitors_are_sent_to_the_login_page(client, people):
    for url in (SUBSCRIBERS, TOPICS, CONSENT_LOG):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_subscriber_list_search(staff, people):
    assert listed_emails(staff.get(SUBSCRIBERS)) == {"ada@example.org", "bo@example.net", "cy@example.org", "di@example.org"}
    assert listed_emails(staff.get(SUBSCRIBERS, {"q": "example.net"})) == {"bo@example.net"}
    assert listed_emails(staff.get(SUBSCRIBERS, {"q": "ADA@"})) == {"ada@example.org"}
    assert listed_emails(staff.get(SUBSCRIBERS, {"q": "nobody"})) == set()


def test_subscriber_list_filters_by_status_and_topic(staff, people, topics):
    assert listed_emails(staff.get(SUBSCRIBERS, {"status__exact": "active"})) == {"ada@example.org", "bo@example.net"}
    assert listed_emails(staff.get(SUBSCRIBERS, {"status__exact": "pending"})) == {"cy@example.org"}
    by_topic = {"topics__id__exact": topics["agents"].pk}
    assert listed_emails(staff.get(SUBSCRIBERS, by_topic)) == {"ada@example.org", "cy@example.org"}
    both = {**by_topic, "status__exact": "active"}
    assert listed_emails(staff.get(SUBSCRIBERS, both)) == {"ada@example.org"}
    # The filter sidebar offers every status and the topics.
    page = staff.get(SUBSCRIBERS).content.decode()
    for label in ("Pending confirmation", "Unsubscribed", "Bounced", "Complained", "Agents and tool use"):
        assert label in page


def test_subscriber_change_page_shows_the_consent_history(staff, people):
    from subscriptions import actions

    actions.set_paused(people["ada"], True, actions.Origin(ip_address="192.0.2.7", user_agent="Browser/1.0"))
    response = staff.get(reverse("admin:subscriptions_subscriber_change", args=[people["ada"].pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "192.0.2.7" in html and "Browser/1.0" in html and "Paused" in html


def test_unsubscribe_action_logs_each_change(staff, people, admin_user):
    ada, bo, di = people["ada"], people["bo"], people["di"]
    response = run_action(staff, "unsubscribe_selected", ada, bo, di)
    # di was already unsubscribed: nothing changes for her and nothing is logged.
    assert "Unsubscribed 2 subscriber(s)." in response.content.decode()
    for subscriber in (ada, bo, di):
        subscriber.refresh_from_db()
        assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    events = ConsentEvent.objects.filter(kind=ConsentEvent.Kind.UNSUBSCRIBE)
    assert sorted(e.subscriber.email for e in events) == ["ada@example.org", "bo@example.net"]
    for event in events:
        assert event.details["method"] == f"admin:{admin_user}"
        assert event.details["previous_status"] == "active"
        assert event.user_agent == "admin"
    assert not di.consent_events.exists()


def test_pause_and_resume_actions_log_each_change(staff, people):
    ada, bo = people["ada"], people["bo"]
    response = run_action(staff, "pause_selected", ada, bo)
    assert "Paused 2 subscriber(s)." in response.content.decode()
    assert set(Subscriber.objects.filter(paused=True).values_list("email", flat=True)) == {ada.email, bo.email}
    assert list(ada.consent_events.values_list("kind", flat=True)) == [ConsentEvent.Kind.PAUSE]

    # Pausing again changes nothing and logs nothing.
    assert "Paused 0 subscriber(s)." in run_action(staff, "pause_selected", ada).content.decode()
    assert ada.consent_events.count() == 1

    response = run_action(staff, "resume_selected", ada)
    assert "Resumed 1 subscriber(s)." in response.content.decode()
    ada.refresh_from_db()
    bo.refresh_from_db()
    assert not ada.paused and bo.paused
    assert list(ada.consent_events.order_by("id").values_list("kind", flat=True)) == [
        ConsentEvent.Kind.PAUSE,
        ConsentEvent.Kind.RESUME,
    ]
    assert list(bo.consent_events.values_list("kind", flat=True)) == [ConsentEvent.Kind.PAUSE]


def test_revoke_links_action_kills_preference_links_but_not_unsubscribe_links(staff, people, client):
    ada, bo = people["ada"], people["bo"]
    old_preferences, old_unsubscribe = preferences_path(ada), unsubscribe_path(ada)
    bo_preferences = preferences_path(bo)
    assert client.get(old_preferences).status_code == 200

    response = run_action(staff, "revoke_links", ada)
    assert "Revoked the preference links of 1 subscriber(s)." in response.content.decode()
    ada.refresh_from_db()
    assert client.get(old_preferences).status_code == 400
    assert client.get(preferences_path(ada)).status_code == 200  # a freshly made link works
    assert client.get(bo_preferences).status_code == 200  # nobody else is affected
    # Unsubscribe links survive, as the bulk-sender rules require.
    assert client.get(old_unsubscribe).status_code == 200


def test_revoke_links_action_is_logged(staff, people):
    run_action(staff, "revoke_links", people["ada"])
    assert people["ada"].consent_events.filter(kind=ConsentEvent.Kind.ADMIN).exists()


def test_topics_can_be_listed_searched_added_and_edited(staff, topics, people):
    response = staff.get(TOPICS)
    assert response.status_code == 200
    assert {t.slug for t in response.context["cl"].result_list} == set(topics)
    assert "Agents and tool use" in response.content.decode()
    assert {t.slug for t in staff.get(TOPICS, {"q": "robot"}).context["cl"].result_list} == {"robotics"}

    added = staff.post(
        reverse("admin:subscriptions_topic_add"),
        {"name": "Graph learning", "slug": "graphs", "description": "GNNs.", "keywords": "graph\nGNN",
         "active": "on", "display_order": 5},
    )
    assert added.status_code == 302, added.context["adminform"].form.errors if added.context else added
    graphs = Topic.objects.get(slug="graphs")
    assert graphs.keyword_list == ["graph", "GNN"]

    agents = topics["agents"]
    changed = staff.post(
        reverse("admin:subscriptions_topic_change", args=[agents.pk]),
        {"name": agents.name, "slug": agents.slug, "description": agents.description, "keywords": agents.keywords,
         "display_order": agents.display_order},  # "active" left out: unticked
    )
    assert changed.status_code == 302
    agents.refresh_from_db()
    assert agents.active is False
    # Duplicate slugs are refused with a message, nothing is saved.
    duplicate = staff.post(
        reverse("admin:subscriptions_topic_add"),
        {"name": "Again", "slug": "graphs", "keywords": "", "display_order": 1},
    )
    assert duplicate.status_code == 200 and "already exists" in duplicate.content.decode()
    assert Topic.objects.filter(slug="graphs").count() == 1


def test_consent_log_is_listed_and_searchable(staff, people):
    from subscriptions import actions

    actions.set_paused(people["ada"], True, actions.Origin(ip_address="198.51.100.4", user_agent="UA"))
    actions.unsubscribe(people["bo"], actions.Origin(ip_address="203.0.113.9"), method="one-click")
    response = staff.get(CONSENT_LOG)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2
    found = staff.get(CONSENT_LOG, {"q": "bo@example"}).context["cl"].result_list
    assert [(e.subscriber.email, e.kind) for e in found] == [("bo@example.net", ConsentEvent.Kind.UNSUBSCRIBE)]
    assert [e.kind for e in staff.get(CONSENT_LOG, {"kind__exact": "pause"}).context["cl"].result_list] == ["pause"]
    # The detail page is viewable (read-only) ...
    event = found[0]
    detail = staff.get(reverse("admin:subscriptions_consentevent_change", args=[event.pk]))
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "203.0.113.9" in html and 'name="_save"' not in html


def test_consent_log_cannot_be_added_changed_or_deleted(staff, people):
    from subscriptions import actions

    actions.set_paused(people["ada"], True, actions.Origin(ip_address="198.51.100.4", user_agent="UA"))
    event = ConsentEvent.objects.get()
    before = (event.kind, event.ip_address, event.user_agent, event.details, event.created_at)

    assert staff.get(reverse("admin:subscriptions_consentevent_add")).status_code == 403
    assert staff.post(
        reverse("admin:subscriptions_consentevent_add"),
        {"subscriber": people["bo"].pk, "kind": "confirm", "details": "{}"},
    ).status_code == 403
    assert staff.post(
        reverse("admin:subscriptions_consentevent_change", args=[event.pk]),
        {"subscriber": people["ada"].pk, "kind": "confirm", "ip_address": "10.0.0.1", "user_agent": "x", "details": "{}"},
    ).status_code == 403
    assert staff.post(reverse("admin:subscriptions_consentevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    # No bulk delete action either.
    changelist = staff.get(CONSENT_LOG)
    assert "delete_selected" not in changelist.content.decode()
    bulk = staff.post(CONSENT_LOG, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [event.pk], "post": "yes"})
    assert bulk.status_code == 200  # the unknown action is refused and the list shown again

    event.refresh_from_db()
    assert ConsentEvent.objects.count() == 1
    assert (event.kind, event.ip_address, event.user_agent, event.details, event.created_at) == before
    # Subscribers with a consent history cannot be deleted from under it either.
    response = staff.post(reverse("admin:subscriptions_subscriber_delete", args=[people["ada"].pk]), {"post": "yes"})
    assert response.status_code == 200 and "Cannot delete subscriber" in response.content.decode()
    assert Subscriber.objects.filter(pk=people["ada"].pk).exists()


def test_editing_a_subscriber_in_the_admin_is_logged(staff, people, topics):
    ada = people["ada"]
    url = reverse("admin:subscriptions_subscriber_change", args=[ada.pk])
    form = staff.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "topics"}
    data.update(
        topics=[topics["code"].pk],
        status="unsubscribed",
        email=ada.email,
        **{f"consent_events-{k}": v for k, v in {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0, "MIN_NUM_FORMS": 0, "MAX_NUM_FORMS": 1000}.items()},
    )
    data = {k: v for k, v in data.items() if not isinstance(v, (list, tuple)) or k == "topics"}
    response = staff.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    event = ada.consent_events.filter(kind=ConsentEvent.Kind.ADMIN).get()
    assert event.details["changes"]["status"] == {"from": "active", "to": "unsubscribed"}
    assert event.details["changes"]["topics"]["to"] == ["code"]


CHANGING_ACTIONS = ["unsubscribe_selected", "pause_selected", "resume_selected", "revoke_links"]


def staff_with(*codenames):
    """A logged-in staff member (not a superuser) holding only these subscriber permissions."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user = User.objects.create_user(f"staff-{'-'.join(codenames)}", password="pw-staff-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="subscriptions", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_view_only_staff_can_look_but_not_run_changing_actions(people):
    viewer = staff_with("view_subscriber")
    page = viewer.get(SUBSCRIBERS).content.decode()
    assert "ada@example.org" in page and 'value="preview_next_digest"' in page
    for action in CHANGING_ACTIONS:
        assert f'value="{action}"' not in page

    Subscriber.objects.filter(pk=people["bo"].pk).update(paused=True)  # something to resume
    before = {s.pk: (s.status, s.paused, s.secret) for s in Subscriber.objects.all()}
    for action in CHANGING_ACTIONS:
        response = run_action(viewer, action, people["ada"], people["bo"])
        assert response.status_code == 200 and "No action selected." in response.content.decode()
    assert {s.pk: (s.status, s.paused, s.secret) for s in Subscriber.objects.all()} == before
    assert not ConsentEvent.objects.exists()

    # The same request from staff who may change subscribers works (the refusal above is the permission).
    editor = staff_with("view_subscriber", "change_subscriber")
    assert "Paused 1 subscriber(s)." in run_action(editor, "pause_selected", people["ada"]).content.decode()


def test_the_digest_preview_shows_staff_no_working_personal_link(people, make_scrape):
    """The preview shows where each personal link goes, visibly redacted: nothing on the page
    opens anyone's preferences, unsubscribes them or shows their digest."""
    import html
    import re

    from django.test import Client

    from subscriptions import tokens

    make_scrape([dict(arxiv_id="2611.50001", title="Agents", abstract="A.", authors=["A"], upvotes=3, topics={"agents": 5.0})])
    ada = people["ada"]
    page = staff_with("view_subscriber").get(reverse("admin:newsletter_delivery_preview", args=[ada.pk]))
    assert page.status_code == 200
    shown = html.unescape(html.unescape(page.content.decode()))  # the email sits escaped in srcdoc
    assert "Agents" in shown
    personal = set(re.findall(r"http://testserver/(preferences|unsubscribe|digest)/([^/\s\"'<>]+)/", shown))
    assert personal == {(kind, "REDACTED-IN-PREVIEW") for kind in ("preferences", "unsubscribe", "digest")}
    assert "<http://testserver/unsubscribe/REDACTED-IN-PREVIEW/>" in shown  # the List-Unsubscribe header
    for kind, token in personal:
        assert Client().get(f"/{kind}/{token}/").status_code in (400, 404)
    assert working_tokens_in(page.content.decode(), ada) == set()
    assert working_tokens_in(tokens.preferences_url(ada), ada)  # (the detector finds a real one)
