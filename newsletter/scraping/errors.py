"""The one error the scraper raises for anything wrong with the source: unreachable, refused,
too big, unreadable, empty or suspiciously short. Callers record it and alert; they never
build a digest from it."""


class ScrapeError(Exception):
    """The source could not be turned into a trustworthy list of papers."""

    def __init__(self, message: str, *, http_status: int | None = None):
        super().__init__(message)
        self.http_status = http_status
