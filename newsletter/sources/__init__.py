"""Where papers come from: the registry of paper sources.

PAPER_SOURCES (newsletter/app_settings.py) lists the sources by dotted path, Hugging Face
alone for now. Each one (a `newsletter.sources.base.Source`) knows its page kinds, reads a
response into papers and builds its links; everything the sources share (the record type,
cleaning and validation) is in newsletter/scraping/parse.py and newsletter/scraped.py. How to
add one: ADDING_A_SOURCE.md.

A scrape run stores the page kind it read (`ScrapeRun.kind`), validated against the kinds the
registered sources declare, so adding a source needs no migration.
"""

from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.module_loading import import_string

from newsletter.app_settings import app_settings

# A saved page or API response loaded by hand (manage.py scrape_papers --file): read by the
# default source, never compared with scheduled runs.
FILE_KIND = "file"
FILE_LABEL = "File loaded by hand"
# ScrapeRun.kind's max_length.
MAX_KIND_LENGTH = 16


def registered() -> list:
    """The sources, in PAPER_SOURCES order (one instance each)."""
    return _load(tuple(app_settings.PAPER_SOURCES))


@lru_cache(maxsize=4)
def _load(paths: tuple[str, ...]) -> list:
    found, kinds = [], {FILE_KIND: "files loaded by hand"}
    for path in paths:
        source = import_string(path)()
        if not source.name or not source.label or not source.kinds:
            raise ImproperlyConfigured(f"{path} needs a name, a label and at least one page kind.")
        if any(s.name == source.name for s in found):
            raise ImproperlyConfigured(f"Two paper sources are called {source.name!r}.")
        for kind in source.kinds:
            if kind in kinds:
                raise ImproperlyConfigured(f"Page kind {kind!r} of {path} is taken (by {kinds[kind]}).")
            if len(kind) > MAX_KIND_LENGTH:
                raise ImproperlyConfigured(f"Page kind {kind!r} of {path} is longer than {MAX_KIND_LENGTH} characters.")
            kinds[kind] = source.name
        found.append(source)
    if not found:
        raise ImproperlyConfigured("PAPER_SOURCES lists no source.")
    return found


def get(name: str):
    for source in registered():
        if source.name == name:
            return source
    raise KeyError(f"no paper source is called {name!r}")


def for_url(url: str):
    """(source, page kind) of the first source that knows `url`; None if none does."""
    for source in registered():
        kind = source.kind_of(url)
        if kind is not None:
            return source, kind
    return None


def for_kind(kind: str):
    """The source whose page kind this is (None for FILE_KIND and unknown kinds)."""
    for source in registered():
        if kind in source.kinds:
            return source
    return None


def default():
    """The source of the scheduled scrape (SCRAPE_SOURCE_URL), else the first one: it reads
    files loaded by hand and links papers no page of any source listed."""
    found = for_url(settings.SCRAPE_SOURCE_URL)
    return found[0] if found else registered()[0]


def kinds() -> dict[str, str]:
    """Every page kind a ScrapeRun may have -> its label."""
    labels = {kind: label for source in registered() for kind, label in source.kinds.items()}
    labels[FILE_KIND] = FILE_LABEL
    return labels


def kind_label(kind: str) -> str:
    return kinds().get(kind, kind)


def validate_kind(value: str) -> None:
    """ScrapeRun.kind's validator: a page kind of a registered source, or FILE_KIND."""
    if value not in kinds():
        raise ValidationError("%(value)r is not a page kind of any registered paper source.", params={"value": value})
