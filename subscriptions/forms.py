import re
import unicodedata

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.safestring import mark_safe

from newsletter import seed_papers

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


class TimezoneInput(forms.TextInput):
    """A text input with every zone as a suggestion (<datalist>): searchable by typing a city,
    and usable without JavaScript; subscriptions/static/subscriptions/timezone.js fills in the
    browser's zone where the field still holds the default."""

    def __init__(self, default: str = "UTC"):
        super().__init__(attrs={"list": "timezones", "autocomplete": "off", "spellcheck": "false", "data-browser-timezone": default})

    def render(self, name, value, attrs=None, renderer=None):
        options = "".join(f'<option value="{zone}">' for zone in available_timezones())
        return mark_safe(f'{super().render(name, value, attrs, renderer)}<datalist id="timezones">{options}</datalist>')


class TimezoneField(forms.CharField):
    """An IANA zone name, matched without regard to case ("europe/paris" is Europe/Paris)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Your timezone")
        kwargs.setdefault("help_text", "Type a city to search, e.g. Europe/Paris or America/New_York.")
        super().__init__(max_length=64, widget=TimezoneInput(), **kwargs)

    def clean(self, value):
        value = super().clean(value).strip()
        if not value:
            return "UTC"
        zones = {zone.lower(): zone for zone in available_timezones()}
        if value.lower() not in zones:
            raise ValidationError("Unknown timezone. Type a city and pick a zone from the list, e.g. Europe/Paris.")
        return zones[value.lower()]


class WeekdayField(forms.TypedChoiceField):
    """The day of a weekly digest. Optional: the pages hide it while another frequency is
    ticked (CSS, no script), and the forms then keep the stored day (see weekday_to_keep)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Day for the weekly digest")
        super().__init__(choices=Subscriber.Weekday.choices, coerce=int, required=False, empty_value=None, **kwargs)


def weekday_to_keep(cleaned_data: dict, kept: int | None) -> int | None:
    """The day chosen for a weekly digest; for any other frequency, or none chosen, `kept`:
    a hidden field's value is not a choice the reader made."""
    chosen = cleaned_data.get("weekday")
    if cleaned_data.get("frequency") != Subscriber.Frequency.WEEKLY or chosen is None:
        return kept
    return chosen


class SignupForm(forms.Form):
    email = PlainEmailField()
    topics = TopicChoiceField(to_field_name="slug")
    frequency = forms.ChoiceField(
        choices=Subscriber.Frequency.choices, initial=Subscriber.Frequency.DAILY, widget=forms.RadioSelect
    )
    weekday = WeekdayField(initial=Subscriber.Weekday.MONDAY)
    timezone = TimezoneField(required=False, initial="UTC", label="Your timezone (digests come in the morning, your time)")
    # Honeypot: hidden from people by CSS, filled in by naive bots.
    website = forms.CharField(
        required=False,
        max_length=200,
        label="Leave this field empty",
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )

    def clean(self):
        cleaned_data = super().clean()
        # None (a daily digest, or no day sent): the sign-up records no day and the new
        # subscriber keeps the model's default.
        cleaned_data["weekday"] = weekday_to_keep(cleaned_data, None)
        return cleaned_data

    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))


class PreferencesLinkForm(forms.Form):
    email = PlainEmailField()


class PreferencesForm(forms.Form):
    topics = TopicChoiceField(to_field_name="slug")
    frequency = forms.ChoiceField(choices=Subscriber.Frequency.choices, widget=forms.RadioSelect)
    weekday = WeekdayField()
    send_hour = forms.TypedChoiceField(
        choices=[(h, f"{h:02d}:00") for h in range(24)], coerce=int, label="Send at (your local time)"
    )
    timezone = TimezoneField()
    papers_per_email = forms.IntegerField(min_value=1, max_value=50, label="Papers per email")

    def clean(self):
        cleaned_data = super().clean()
        cleaned_data["weekday"] = weekday_to_keep(cleaned_data, self.initial.get("weekday", Subscriber.Weekday.MONDAY))
        return cleaned_data

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


class ReaderTextField(forms.CharField):
    """Free text from a <textarea>: line breaks as "\\n" (browsers send "\\r\\n" but count, and
    cap with maxlength, one character per break), no control characters."""

    def to_python(self, value):
        value = super().to_python(value)
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        return _CONTROL_CHARACTERS.sub("", value)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Letters and digits of any script, joined by spaces, dots, hyphens and apostrophes: what
# authors' names hold as papers list them ("Yann LeCun", not "LeCun, Yann"), and nothing a
# mail provider could read as a merge tag (%, {, _).
_AUTHOR_NAME = re.compile(r"[^\W_]+(?:[ .'’‘-]+[^\W_]+)*\.?")


class ReadingForm(forms.Form):
    """ "What you want to read" on the preferences page; subscriptions/reading.py applies it."""

    interests = ReaderTextField(
        required=False,
        max_length=2000,
        label="What I want to read about",
        help_text="In your own words, for example “efficient inference on small GPUs, and agents that write code”. "
                  "It counts from your next digest, before you have voted on anything. At most 2,000 characters.",
        error_messages={"max_length": "Please keep it to 2,000 characters (this has %(show_value)d)."},
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    follow_author = forms.CharField(
        required=False,
        max_length=200,
        label="Follow an author",
        help_text="Their name as papers list it, for example “Yann LeCun”. Their papers rank higher in your digest.",
        error_messages={"max_length": "That name is too long (at most 200 characters)."},
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    seed_paper = forms.CharField(
        required=False,
        max_length=300,
        label="Add a paper you liked",
        help_text="An arXiv id such as 2401.12345, or a link to the paper on arxiv.org or huggingface.co/papers. "
                  "Papers like it rank higher.",
        error_messages={"max_length": "That is too long for an arXiv id or a paper link."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "url", "spellcheck": "false"}),
    )
    outside_topics = forms.BooleanField(
        required=False,
        label="Also show one paper from outside my topics",
        help_text="At most one paper per digest that is in none of your topics but that your votes, authors "
                  "and seed papers say you would like. It is marked “Outside your topics”.",
    )

    @classmethod
    def initial_for(cls, subscriber: Subscriber) -> dict:
        return {"interests": subscriber.interests, "outside_topics": subscriber.outside_topics}

    def clean_follow_author(self):
        name = " ".join(unicodedata.normalize("NFC", self.cleaned_data["follow_author"]).split())
        if name and not _AUTHOR_NAME.fullmatch(name):
            raise ValidationError(
                "Please type one author's name as papers list it, for example “Yann LeCun”: "
                "letters, spaces, dots, hyphens and apostrophes only."
            )
        return name

    def clean_seed_paper(self):
        text = self.cleaned_data["seed_paper"]
        if not text:
            return ""
        try:
            return seed_papers.parse_reference(text)
        except seed_papers.NotAPaperReference as exc:
            raise ValidationError(str(exc)) from None
