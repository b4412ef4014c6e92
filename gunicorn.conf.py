"""gunicorn's settings for this project. The Dockerfile and docker-compose.yml name this file
(gunicorn also reads it by default from the working directory); everything an operator tunes
(bind address, workers, log targets) stays on their command lines.

The logs must not hand out working links: every signed token in the access log (request
line, path, the Referer that repeats a page's own URL) and in the error log (a malformed
request line is quoted there) is blanked, keeping only the subscriber id."""

from gunicorn.glogging import Logger

from subscriptions.token_redaction import RedactTokens


class TokenRedactingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)  # runs again on every reload (SIGHUP); add the filter only once
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactTokens) for f in log.filters):
                log.addFilter(RedactTokens())


logger_class = TokenRedactingLogger
