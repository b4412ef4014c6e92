"""What a paper source is: a few class attributes and three methods (ADDING_A_SOURCE.md).

A source turns what one of its pages (or API endpoints) answered into `ParseResult`s of
`ScrapedPaper`s, built with the shared cleaners of newsletter/scraping/parse.py, so that every
value is validated and made safe the same way whatever the source. Fetching (politeness,
retries, robots.txt, size caps), storing, topic assignment and alerting are shared too: a
source only knows its own layouts and links."""

from newsletter.scraping.parse import ParseResult


class Source:
    # Short, stable identifier (logs, PAPER_SOURCES errors).
    name: str = ""
    # Shown to readers next to each paper's link ("Hugging Face").
    label: str = ""
    # Page kind -> label. The kind is stored on each scrape run (at most 16 characters, unique
    # across sources); runs are compared ("far fewer papers than last time") within a kind.
    kinds: dict[str, str] = {}

    def kind_of(self, url: str) -> str | None:
        """Which of this source's page kinds `url` is, or None if it is not one of its pages."""
        raise NotImplementedError

    def parse(self, body: bytes | str, content_type: str = "") -> ParseResult:
        """The papers in a response or a saved file. Invalid records are skipped with a
        warning (ParseResult.warnings, .skipped); no valid paper at all raises ScrapeError,
        and nothing else may escape."""
        raise NotImplementedError

    def paper_url(self, arxiv_id: str) -> str:
        """The paper's own page at this source: readers get it next to the arXiv link."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
