"""Public pages: sign-up, double opt-in, preferences and unsubscribe. No login anywhere:
the signed token in each link is the credential (see tokens.py)."""

from dataclasses import asdict

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from . import actions, tasks, tokens
from .forms import PreferencesForm, PreferencesLinkForm, SignupForm

ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


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
                asdict(actions.Origin.from_request(request)),
            )
        # The same answer whether the address is new, pending, active or a bot's.
        return render(request, "subscriptions/check_inbox.html", {"email": data["email"]})
    status = 400 if form.is_bound else 200
    return render(request, "subscriptions/signup.html", {"form": form}, status=status)


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
            {"preferences_url": reverse("subscriptions:preferences", args=[tokens.make_token(subscriber, tokens.PREFERENCES)])},
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
    subscriber.refresh_from_db()
    context = {
        "form": form,
        "subscriber": subscriber,
        "unsubscribe_url": reverse("subscriptions:unsubscribe", args=[tokens.make_token(subscriber, tokens.UNSUBSCRIBE)]),
    }
    return render(request, "subscriptions/preferences.html", context, status=400 if form.errors else 200)


@csrf_exempt  # RFC 8058: one-click POSTs carry no cookie and no CSRF token; the signed URL authenticates.
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    try:
        subscriber, _ = tokens.read_token(token, tokens.UNSUBSCRIBE)
    except tokens.InvalidToken:
        return _invalid_link(request, "unsubscribe")
    if request.method == "GET":
        return render(request, "subscriptions/unsubscribe.html", {"email": subscriber.email})
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    actions.unsubscribe(subscriber, actions.Origin.from_request(request), method="one-click" if one_click else "page")
    # 200, never a redirect: mailbox providers do not follow them on one-click POSTs. No
    # preferences link: unsubscribe links never expire and survive "Revoke preference links",
    # so the way back is a link emailed to the address itself.
    return render(request, "subscriptions/unsubscribed.html", {"email": subscriber.email})
