"""Structured log lines: `event=digest.chunk sent=998 skipped=2 seconds=0.84`, one per step,
easy to grep and to parse."""

import logging

logger = logging.getLogger("newsletter.digests")


def _format(value) -> str:
    if isinstance(value, float):
        value = f"{value:.3f}"
    text = str(value)
    if not text or any(c in text for c in ' ="\n\r'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
    return text


def log(event: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, " ".join([f"event={event}", *(f"{k}={_format(v)}" for k, v in fields.items())]))
