"""Public pages: sign-up, double opt-in, preferences and unsubscribe. No login anywhere:
the signed token in each link is the credential (see tokens.py)."""

import json
from dataclasses import asdict

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from django_ratelimit.core import is_ratelimited
from django_ratelimit.decorators import ratelimit

from newsletter.app_settings import app_settings

from . import actions, data_rights, reading, schedule, tasks, tokens
from .forms import PreferencesForm, PreferencesLinkForm, ReadingForm, SignupForm

ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
# The cookie in which the sign-up's answer finds the address it was given (redirect-after-POST).
CHECK_INBOX_EMAIL = "signup_email"


def _signup_rate(group, request):
    return settings.SIGNUP_RATE_LIMIT


@never_cache
@require_http_methods(["GET", "POST"])
@ratelimit(key="ip", rate=_signup_rate, method="POST", block=False, group="signup")
def signup(request):
    if request.method == "POST" and getattr(request, "limited", False):
        return render(request, "subscriptions/rate_limited.html", status=429)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if not form.is_bot():
            # Queued, not done here: the answer then takes the same work, and so the same
            # time, whether the address is new, pending, active, unsubscribed or bounced.
            tasks.handle_signup.delay(
                data["email"], [t.slug for t in data["topics"]], data["frequency"],
                asdict(actions.Origin.from_request(request)), timezone=data["timezone"],
                weekday=data["weekday"],
            )
        # The same answer whether the address is new, pending, active or a bot's; a redirect,
        # so that reloading the answer does not post the form again.
        response = redirect("subscriptions:check_inbox")
        response.status_code = 303
        # The address rides along in a signed cookie for the answer page, not in a session:
        # no database write, so the answer costs the same queries for every address.
        response.set_signed_cookie(CHECK_INBOX_EMAIL, data["email"], salt=CHECK_INBOX_EMAIL, max_age=600, httponly=True,
                                   samesite="Lax", secure=settings.SESSION_COOKIE_SECURE, path=reverse("subscriptions:check_inbox"))
        return response
    status = 400 if form.is_bound else 200
    return render(request, "subscriptions/signup.html", {"form": form}, status=status)


@never_cache
@require_GET
def check_inbox(request):
    """The answer to a sign-up, after its redirect: the address comes from its signed cookie."""
    email = request.get_signed_cookie(CHECK_INBOX_EMAIL, default="", salt=CHECK_INBOX_EMAIL, max_age=600)
    return render(request, "subscriptions/check_inbox.html", {"email": email})


def _invalid_link(request, what: str):
    return render(request, "subscriptions/invalid_link.html", {"what": what}, status=400)


def _expired_link(request, token=None):
    """410; with `token` the page offers a fresh link, without it (too old) a new sign-up."""
    context = {"token": token, "valid_days": settings.CONFIRMATION_LINK_MAX_AGE // 86400}
    return render(request, "subscriptions/confirm_expired.html", context, status=410)


@never_cache
@require_http_methods(["GET", "POST"])
def confirm(request, token):
    try:
        subscriber, data, expired = tokens.read_confirm_token(token)
    except tokens.ExpiredToken:
        return _expired_link(request)
    except tokens.InvalidToken:
        return _invalid_link(request, "confirmation")
    if expired:
        return _expired_link(request, token)
    # Used already, or overtaken by an unsubscribe, a bounce or a complaint: the link is spent.
    signup_id = data.get("signup")
    if actions.open_signup(subscriber, signup_id) is None:
        return _invalid_link(request, "confirmation")
    if request.method == "POST":
        if not actions.confirm(subscriber, signup_id, actions.Origin.from_request(request)):
            return _invalid_link(request, "confirmation")  # a simultaneous request used it
        return render(
            request,
            "subscriptions/confirmed.html",
            {"preferences_url": reverse("subscriptions:preferences", args=[tokens.make_token(subscriber, tokens.PREFERENCES)]),
             "first_digest": schedule.next_digest(subscriber)},
        )
    # GET only shows a button: link scanners that fetch every URL cannot confirm for anyone.
    return render(request, "subscriptions/confirm.html", {"email": subscriber.email})


@never_cache
@require_http_methods(["POST"])
@ratelimit(key="ip", rate=_signup_rate, method="POST", block=False, group="signup")
def resend_confirmation(request, token):
    """Offered on the expired-link page: a fresh link for the same sign-up."""
    if getattr(request, "limited", False):
        return render(request, "subscriptions/rate_limited.html", status=429)
    try:
        subscriber, data, _ = tokens.read_confirm_token(token)
    except tokens.ExpiredToken:
        return _expired_link(request)
    except tokens.InvalidToken:
        return _invalid_link(request, "confirmation")
    # The worker sends it only while that sign-up is open and the address has emails left
    # today; this answer is the same either way.
    tasks.send_confirmation_email.delay(subscriber.pk, data.get("signup"))
    return render(request, "subscriptions/check_inbox.html", {"email": subscriber.email})


@never_cache
@require_http_methods(["GET", "POST"])
@ratelimit(key="ip", rate=_signup_rate, method="POST", block=False, group="signup")
def email_preferences_link(request):
    """The "email me a link to my preferences" form, offered by the unsubscribe answer and the
    web copy of a digest, which may hold no working link. Queued like a sign-up: the answer
    is the same for every address, and the link goes only to the address itself."""
    if request.method == "POST" and getattr(request, "limited", False):
        return render(request, "subscriptions/rate_limited.html", status=429)
    form = PreferencesLinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tasks.send_preferences_link_email.delay(form.cleaned_data["email"])
        return render(request, "subscriptions/check_inbox.html", {"email": form.cleaned_data["email"]})
    return render(request, "subscriptions/preferences_link.html", {"form": form}, status=400 if form.is_bound else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request, token):
    try:
        subscriber, _ = tokens.read_token(token, tokens.PREFERENCES)
    except tokens.InvalidToken:
        return _invalid_link(request, "preferences")
    origin = actions.Origin.from_request(request)
    action = request.POST.get("action", "save")
    if request.method == "POST" and action in READING_ACTIONS:
        return _change_reading(request, subscriber, token, origin, action)
    if request.method == "POST" and action != "save":
        if action == "pause":
            actions.set_paused(subscriber, True, origin)
            messages.success(request, "Paused. You will get no digests until you resume.")
        elif action == "resume":
            actions.set_paused(subscriber, False, origin)
            messages.success(request, "Resumed. Your next digest comes at your usual time.")
        elif action == "resubscribe":
            actions.resubscribe(subscriber, origin)
            messages.success(request, "Welcome back! You are subscribed again.")
        else:
            return _invalid_link(request, "preferences")
        return redirect(request.path)
    form = PreferencesForm(request.POST or None, initial=PreferencesForm.initial_for(subscriber))
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        topics = values.pop("topics")
        changes = actions.update_preferences(subscriber, values, topics, origin)
        messages.success(request, "Your preferences are saved." if changes else "Nothing changed.")
        return redirect(request.path)
    return _preferences_page(request, subscriber, token, form=form)


def _preferences_page(request, subscriber, token, form=None, reading_form=None):
    """The page, with either form bound to what the reader sent (and its errors: 400)."""
    subscriber.refresh_from_db()
    context = {
        "form": form or PreferencesForm(initial=PreferencesForm.initial_for(subscriber)),
        "reading_form": reading_form or ReadingForm(initial=ReadingForm.initial_for(subscriber)),
        "reading": reading.overview(subscriber),
        "subscriber": subscriber,
        "unsubscribe_url": reverse("subscriptions:unsubscribe", args=[tokens.make_token(subscriber, tokens.UNSUBSCRIBE)]),
        "download_url": reverse("subscriptions:download_data", args=[token]),
        "delete_url": reverse("subscriptions:delete_data", args=[token]),
        "feed_url": tokens.feed_url(subscriber),
    }
    errors = (form is not None and form.errors) or (reading_form is not None and reading_form.errors)
    return render(request, "subscriptions/preferences.html", context, status=400 if errors else 200)


# "What you want to read" (subscriptions/reading.py): the form, and the buttons that remove
# one followed author, seed paper or like.
READING_ACTIONS = {"reading", "unfollow", "remove-seed", "unlike"}
READING_ANCHOR = "#reading"


def _too_many_changes(request, subscriber) -> bool:
    """Counted per reader (after the token was checked, so no one can spend another
    reader's allowance): each change writes a consent-log row and queues a retraining."""
    return is_ratelimited(
        request, group="reader-changes", key=lambda group, request: str(subscriber.pk),
        rate=app_settings.READER_CHANGES_RATE_LIMIT, increment=True,
    )


def _change_reading(request, subscriber, token, origin, action):
    if _too_many_changes(request, subscriber):
        return render(request, "subscriptions/too_many_changes.html", {"preferences_path": request.path}, status=429)
    if action == "reading":
        form = ReadingForm(request.POST)
        if form.is_valid():
            try:
                changes = reading.save(subscriber, origin, **form.cleaned_data)
            except reading.LimitReached as exc:
                form.add_error(exc.field_name, exc.message)
            else:
                messages.success(request, " ".join(_reading_saved(form.cleaned_data, changes)))
                return redirect(request.path + READING_ANCHOR)
        # Nothing is saved; the page shows every field as the reader typed it, with the errors.
        return _preferences_page(request, subscriber, token, reading_form=form)
    if action == "unfollow":
        name = reading.unfollow(subscriber, request.POST.get("author"), origin)
        messages.success(request, f"You no longer follow {name}." if name else "You did not follow that author (any more).")
    elif action == "remove-seed":
        arxiv_id = reading.remove_seed(subscriber, request.POST.get("seed"), origin)
        messages.success(request, f"Removed the seed paper {arxiv_id}." if arxiv_id else "That seed paper was removed already.")
    else:
        paper = reading.unlike(subscriber, request.POST.get("paper"), origin)
        title = Truncator(paper.title).chars(120) if paper else ""
        messages.success(request, f"You no longer like “{title}”." if paper else "That paper was not among your likes (any more).")
    return redirect(request.path + READING_ANCHOR)


def _reading_saved(data: dict, changes: dict) -> list[str]:
    """What the reader is told after saving "What you want to read"."""
    said = []
    if data["follow_author"]:
        said.append(f"You now follow {data['follow_author']}." if "followed_authors" in changes
                    else f"You already follow {data['follow_author']}.")
    if data["seed_paper"]:
        said.append(f"Added the seed paper {data['seed_paper']}." if "seed_papers" in changes
                    else f"{data['seed_paper']} is already one of your seed papers.")
    if "interests" in changes:
        said.append("Saved what you want to read about." if data["interests"] else "Removed what you wanted to read about.")
    if "outside_topics" in changes:
        said.append("Your digest will also show one paper from outside your topics." if data["outside_topics"]
                    else "Your digest will show only papers from your topics.")
    return said or ["Nothing changed."]


# --- Data rights (subscriptions/data_rights.py) --------------------------------------------

@never_cache
@require_http_methods(["POST"])
def download_data(request, token):
    """"Download my data": a POST (a link scanner fetching the page downloads nothing and
    logs nothing), answered with the JSON file."""
    try:
        subscriber, _ = tokens.read_token(token, tokens.PREFERENCES)
    except tokens.InvalidToken:
        return _invalid_link(request, "preferences")
    data = data_rights.export(subscriber, actions.Origin.from_request(request))
    response = HttpResponse(json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="my-data-{timezone.now():%Y-%m-%d}.json"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def delete_data(request, token):
    """"Delete my data": GET says what goes and asks; the confirming POST erases."""
    try:
        subscriber, _ = tokens.read_token(token, tokens.PREFERENCES)
    except tokens.InvalidToken:
        return _invalid_link(request, "preferences")
    if request.method == "POST":
        data_rights.erase(subscriber)
        return render(request, "subscriptions/data_deleted.html")
    context = {
        "email": subscriber.email,
        "download_url": reverse("subscriptions:download_data", args=[token]),
        "preferences_url": reverse("subscriptions:preferences", args=[token]),
    }
    return render(request, "subscriptions/delete_data.html", context)


@csrf_exempt  # RFC 8058: one-click POSTs carry no cookie and no CSRF token; the signed URL authenticates.
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    try:
        subscriber, _ = tokens.read_token(token, tokens.UNSUBSCRIBE)
    except tokens.InvalidToken:
        return _invalid_link(request, "unsubscribe")
    receiving = subscriber.status == subscriber.Status.ACTIVE
    if request.method == "GET":
        return render(request, "subscriptions/unsubscribe.html", {"subscriber": subscriber, "email": subscriber.email, "receiving": receiving})
    # Gentler than unsubscribing, so the link that may unsubscribe may do them too.
    instead = request.POST.get("instead")
    if receiving and instead in ("pause", "weekly"):
        origin = actions.Origin.from_request(request)
        if instead == "pause":
            actions.set_paused(subscriber, True, origin)
        else:
            actions.go_weekly(subscriber, origin, method="unsubscribe page")
        subscriber.refresh_from_db()
        return render(request, "subscriptions/unsubscribe_instead.html", {"subscriber": subscriber, "email": subscriber.email, "instead": instead})
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    actions.unsubscribe(subscriber, actions.Origin.from_request(request), method="one-click" if one_click else "page")
    # 200, never a redirect: mailbox providers do not follow them on one-click POSTs. No
    # preferences link: unsubscribe links never expire and survive "Revoke preference links",
    # so the way back is a link emailed to the address itself.
    return render(request, "subscriptions/unsubscribed.html", {"email": subscriber.email})
