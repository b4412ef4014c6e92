from django.contrib import admin
from django.urls import include, path

from newsletter import views
from subscriptions import webhooks

urlpatterns = [
    path("admin/", admin.site.urls),
    # Provider tracking webhooks (/anymail/<esp>/tracking/): anymail.urls behind a required secret.
    path("anymail/", include(webhooks.anymail_urlpatterns())),
    path("digest/<str:token>/", views.view_digest, name="view_digest"),
    path("feedback/", include("newsletter.feedback.urls")),
    # Public archive and Atom feeds: /archive/, /topics/<slug>/, /feeds/... (newsletter/archive/).
    path("", include("newsletter.archive.urls")),
    path("", include("subscriptions.urls")),
]
