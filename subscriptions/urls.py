from django.urls import path

from . import views

app_name = "subscriptions"

urlpatterns = [
    path("", views.signup, name="signup"),
    path("check-inbox/", views.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("confirm/<str:token>/resend/", views.resend_confirmation, name="resend_confirmation"),
    path("preferences/", views.email_preferences_link, name="email_preferences_link"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("preferences/<str:token>/download/", views.download_data, name="download_data"),
    path("preferences/<str:token>/delete/", views.delete_data, name="delete_data"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
