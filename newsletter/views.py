"""Public pages of the newsletter app: a sent digest, "view in browser"."""

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from subscriptions import tokens

from .digests.preview import sent_digest_html
from .models import Delivery

# The digest holds scraped text: no script may run, nothing may load but images and inline
# styles, and the tokened URL must not leak to the sites it links to.
DIGEST_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


@never_cache
@require_GET
def view_digest(request, token):
    """A sent digest as its recipient received it, minus their personal links. The signed
    link names the delivery, is bound to the subscriber and their link secret (revoking links
    revokes it) and expires after DIGEST_VIEW_LINK_MAX_AGE."""
    try:
        subscriber, data = tokens.read_token(token, tokens.VIEW_DIGEST, max_age=settings.DIGEST_VIEW_LINK_MAX_AGE)
    except tokens.ExpiredToken:
        context = {"expired": True, "days": settings.DIGEST_VIEW_LINK_MAX_AGE // 86400}
        return render(request, "newsletter/digest_gone.html", context, status=410)
    except tokens.InvalidToken:
        return render(request, "subscriptions/invalid_link.html", {"what": "digest"}, status=400)
    delivery_id = data.get("d")
    delivery = None
    if isinstance(delivery_id, int) and not isinstance(delivery_id, bool):
        delivery = (
            Delivery.objects.select_related("subscriber")
            .filter(pk=delivery_id, subscriber=subscriber, status=Delivery.Status.SENT, content__isnull=False)
            .first()
        )
    if delivery is None:
        return render(request, "newsletter/digest_gone.html", status=404)
    response = HttpResponse(sent_digest_html(delivery))
    for name, value in DIGEST_PAGE_HEADERS.items():
        response[name] = value
    return response
