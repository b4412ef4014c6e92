"""The default backend for running without any account: prints each email to the console
and keeps a copy as an .eml file in EMAIL_OUTBOX_DIR, where it can be opened in a mail client."""

import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend
from django.utils import timezone


class OutboxEmailBackend(ConsoleEmailBackend):
    def __init__(self, *args, outbox_dir=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.outbox_dir = Path(outbox_dir or settings.EMAIL_OUTBOX_DIR)

    def write_message(self, message):
        super().write_message(message)
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
        path = self.outbox_dir / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(message.message().as_bytes(linesep="\n"))
