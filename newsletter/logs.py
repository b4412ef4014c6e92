"""One logging style for the whole project: the standard library's loggers, one formatter
(LOGGING in settings), and messages written as key=value fields,

    event=digest.chunk claimer=5f0c… sent=998 skipped=2 seconds=0.840

one line per step, easy to grep and to parse. Each module keeps its own logger, named after
it as usual, so levels can still be set per area (`newsletter.scraping`, `newsletter.digests`):

    log = EventLog(__name__)
    log("scrape.stored", run=run.pk, found=120)
    log("digest.claim_lost", level=logging.WARNING, deliveries=3)
"""

import logging


def format_value(value) -> str:
    """A field's value: floats to three decimals; quoted (and escaped) when empty or holding a
    space, quote, equals sign or line break, so a line always splits back into its fields."""
    if isinstance(value, float):
        value = f"{value:.3f}"
    text = str(value)
    if not text or any(c in text for c in ' ="\n\r'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
    return text


def event_line(event: str, **fields) -> str:
    return " ".join([f"event={event}", *(f"{name}={format_value(value)}" for name, value in fields.items())])


class EventLog:
    """A module's logger that writes events: `log(event, level=INFO, exc_info=False, **fields)`."""

    def __init__(self, name: str):
        self.logger = logging.getLogger(name)

    def __call__(self, event: str, level: int = logging.INFO, exc_info=False, **fields) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, event_line(event, **fields), exc_info=exc_info)
