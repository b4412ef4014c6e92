"""Filters for settings.LOGGING."""

import logging

from django.core.cache import cache


class OncePerInterval(logging.Filter):
    """Lets one record per logger name through every `seconds`, for all processes together
    (the mark is kept in the shared cache): on a mail handler, what anyone on the internet can
    trigger reaches the admins at most that often, while other handlers still get every record."""

    def __init__(self, seconds: int = 3600):
        super().__init__()
        self.seconds = seconds

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return cache.add(f"log-mailed:{record.name}", True, timeout=self.seconds)
        except Exception:  # cache unreachable: stay quiet rather than risk a flood of mail
            return False
