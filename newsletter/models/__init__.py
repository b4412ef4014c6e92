from .papers import Paper, PaperRank, PaperTopicScore, ScrapeRun, TopicClassifier, TopicExample  # noqa: F401
from .digests import Delivery, DigestContent, DigestItem  # noqa: F401
from .health import HealthAlert  # noqa: F401
from .readers import FollowedAuthor, ReaderProfile, SeedPaper, Vote  # noqa: F401
