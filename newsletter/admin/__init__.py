"""Admin pages of the newsletter app, one module per area."""

from . import papers  # noqa: F401
from . import digests  # noqa: F401
from . import health  # noqa: F401
from . import readers  # noqa: F401
