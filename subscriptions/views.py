"""Public pages: sign-up, double opt-in, preferences and unsubscribe. No login anywhere:
the signed token in each link is the credential (see tokens.py)."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from . import actions, tasks, tokens
from .forms import PreferencesForm, SignupForm
from .models import Subscriber

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
        if not form.is_bot():
            actions.request_signup(
                form.cleaned_data["email"],
                form.cleaned_data["topics"],
                form.cleaned_data["frequency"],
                actions.Origin.from_request(request),
            )
        # The same answer whether the address is new, pending, active or a bot's.
        return render(request, "subscriptions/check_inbox.html", {"email": form.cleaned_data["email"]})
    status = 400 if form.is_bound else 200
    return render(request, "subscriptions/signup.html", {"form": form}, status=status)


def _invalid_link(request, what: str):
    return render(request, "subscriptions/invalid_link.html", {"what": what}, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
def confirm(request, token):
    try:
        subscriber, choices = tokens.read_token(token, tokens.CONFIRM, max_age=tokens.confirm_max_age())
    except tokens.ExpiredToken:
        return render(request, "subscriptions/confirm_expired.html", {"token": token}, status=410)
    except tokens.InvalidToken:
        return _invalid_link(request, "confirmation")
    if request.method == "POST":
        actions.confirm(subscriber, choices, actions.Origin.from_request(request))
        return render(
            request,
            "subscriptions/confirmed.html",
            {"preferences_url": reverse("subscriptions:preferences", args=[tokens.make_token(subscriber, tokens.PREFERENCES)])},
        )
    # GET only shows a button: link scanners that fetch every URL cannot confirm for anyone.
    already = subscriber.status == Subscriber.Status.ACTIVE
    return render(request, "subscriptions/confirm.html", {"already_active": already, "email": subscriber.email})


@never_cache
@require_http_methods(["POST"])
@ratelimit(key="ip", rate=_signup_rate, method="POST", block=False, group="signup")
def resend_confirmation(request, token):
    """Offered on the expired-link page: a fresh link with the same choices."""
    if getattr(request, "limited", False):
        return render(request, "subscriptions/rate_limited.html", status=429)
    try:
        subscriber, choices = tokens.read_token(token, tokens.CONFIRM)  # signature checked, age ignored
    except tokens.InvalidToken:
        return _invalid_link(request, "confirmation")
    if subscriber.status != Subscriber.Status.ACTIVE:
        tasks.send_confirmation_email.delay(subscriber.pk, choices)
    return render(request, "subscriptions/check_inbox.html", {"email": subscriber.email})


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
    # 200, never a redirect: mailbox providers do not follow them on one-click POSTs.
    return render(
        request,
        "subscriptions/unsubscribed.html",
        {
            "email": subscriber.email,
            "preferences_url": reverse("subscriptions:preferences", args=[tokens.make_token(subscriber, tokens.PREFERENCES)]),
        },
    )
