from django.urls import path, re_path

from . import feeds, personal, views

app_name = "archive"

urlpatterns = [
    path("archive/", views.index, name="index"),
    re_path(r"^archive/(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})/$", views.day, name="day"),
    path("topics/<slug:slug>/", views.topic, name="topic"),
    path("feeds/all.atom", feeds.papers_feed, name="feed_all"),
    path("feeds/topics/<slug:slug>.atom", feeds.papers_feed, name="feed_topic"),
    path("feeds/me/<str:token>.atom", personal.personal_feed, name="feed_personal"),
]
