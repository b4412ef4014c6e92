from .papers import Paper, PaperRank, PaperTopicScore, ScrapeRun  # noqa: F401
from .digests import Delivery, DigestContent, DigestItem  # noqa: F401
