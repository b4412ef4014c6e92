import re

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from .models import Subscriber, Topic, available_timezones


class PlainAddressValidator(EmailValidator):
    """A plain addr-spec: the local part is ASCII atoms joined by dots (RFC 5322 dot-atom, at
    most 64 characters). Django also accepts quoted local parts such as
    "victim@target.org,x"@attacker.example: one valid address, which a tool that splits
    recipient lists at commas reads as two, one of them someone else's."""

    # No re.IGNORECASE: under it "ſ" (long s) and "K" (Kelvin sign) match the ASCII letters.
    user_regex = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")

    def __call__(self, value):
        super().__call__(value)
        if len(value.rpartition("@")[0]) > 64:
            raise ValidationError(self.message, code=self.code, params={"value": value})


class PlainEmailField(forms.EmailField):
    """The address field of every public form, with the messages people see."""

    default_validators = [PlainAddressValidator()]

    def __init__(self, **kwargs):
        super().__init__(
            max_length=254,
            error_messages={
                "required": "Please enter your email address.",
                "invalid": "That does not look like an email address. Please check it (for example name@example.org).",
                "max_length": "That email address is too long (at most 254 characters).",
            },
            widget=forms.EmailInput(attrs={"autocomplete": "email", "placeholder": "you@example.org"}),
            **kwargs,
        )


class TopicChoiceField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        super().__init__(
            queryset=Topic.objects.filter(active=True),
            error_messages={
                "required": "Pick at least one topic.",
                "invalid_choice": "One of the chosen topics does not exist (any more). Please pick again.",
                "invalid_pk_value": "One of the chosen topics does not exist. Please pick again.",
            },
            **kwargs,
        )

    def label_from_instance(self, topic):
        return topic.name


class SignupForm(forms.Form):
    email = PlainEmailField()
    topics = TopicChoiceField(to_field_name="slug")
    frequency = forms.ChoiceField(
        choices=Subscriber.Frequency.choices, initial=Subscriber.Frequency.DAILY, widget=forms.RadioSelect
    )
    # Honeypot: hidden from people by CSS, filled in by naive bots.
    website = forms.CharField(
        required=False,
        max_length=200,
        label="Leave this field empty",
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )

    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))


class PreferencesLinkForm(forms.Form):
    email = PlainEmailField()


class PreferencesForm(forms.Form):
    topics = TopicChoiceField(to_field_name="slug")
    frequency = forms.ChoiceField(choices=Subscriber.Frequency.choices, widget=forms.RadioSelect)
    weekday = forms.TypedChoiceField(
        choices=Subscriber.Weekday.choices, coerce=int, label="Day for the weekly digest"
    )
    send_hour = forms.TypedChoiceField(
        choices=[(h, f"{h:02d}:00") for h in range(24)], coerce=int, label="Send at (your local time)"
    )
    timezone = forms.ChoiceField(label="Your timezone")
    papers_per_email = forms.IntegerField(min_value=1, max_value=50, label="Papers per email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = [(tz, tz) for tz in available_timezones()]

    @classmethod
    def initial_for(cls, subscriber: Subscriber) -> dict:
        return {
            "topics": [t.slug for t in subscriber.topics.all()],
            "frequency": subscriber.frequency,
            "weekday": subscriber.weekday,
            "send_hour": subscriber.send_hour,
            "timezone": subscriber.timezone,
            "papers_per_email": subscriber.papers_per_email,
        }

    def clean_timezone(self):
        value = self.cleaned_data["timezone"]
        if value not in available_timezones():
            raise ValidationError("Unknown timezone.")
        return value
