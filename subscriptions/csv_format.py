"""The subscriber CSV that export writes and import reads: one row per subscriber, topics as
space-separated slugs. Shared by subscriptions/exporting.py and subscriptions/importing.py so
a file exported here imports here unchanged."""

COLUMNS = [
    "email", "status", "topics", "frequency", "weekday", "send_hour", "timezone", "papers_per_email", "paused",
    "created_at", "confirmed_at", "unsubscribed_at",
]

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# A cell starting with one of these is a formula to a spreadsheet (CSV injection): export
# writes it with a leading apostrophe, which spreadsheets hide and import strips again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def protect_cell(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def unprotect_cell(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value
