from .papers import Paper, PaperRank, PaperTopicScore, ScrapeRun  # noqa: F401
