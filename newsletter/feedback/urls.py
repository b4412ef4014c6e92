from django.urls import path

from . import views

app_name = "feedback"

urlpatterns = [
    path("<str:token>/", views.rate, name="rate"),
    path("<str:token>/undo/", views.undo, name="undo"),
    path("<str:token>/not-interested/", views.not_interested, name="not_interested"),
    path("<str:token>/<str:action>/", views.vote, name="vote"),
]
