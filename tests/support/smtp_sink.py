"""The SMTP sink: a real SMTP server (aiosmtpd) on loopback that receives what the site sends.

Tests read the messages it keeps; chaos and bench runs of thousands of messages only count
them (`keep_messages=False`): per recipient, which is how duplicates and losses are found."""

import atexit
import threading
import time
from collections import Counter
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

from .net import HOST, free_port


class SmtpSink:
    """Each kept message is {"envelope_to": [...], "from": ..., "message": EmailMessage, "raw":
    the bytes received}."""

    def __init__(self, keep_messages: bool = True):
        self.keep_messages = keep_messages
        self.messages: list[dict] = []
        self.per_recipient: Counter = Counter()
        self.subjects: Counter = Counter()
        self.lock = threading.Lock()  # the server thread appends while the caller reads
        self.port = free_port()
        self.controller = Controller(self, hostname=HOST, port=self.port)
        self._running = False

    def start(self) -> "SmtpSink":
        self.controller.start()
        self._running = True
        atexit.register(self.stop)  # scripts that exit early still free the port
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.controller.stop()
            atexit.unregister(self.stop)

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.per_recipient[rcpt.lower()] += 1
            self.subjects[str(msg["Subject"])] += 1
            if self.keep_messages:
                self.messages.append({"envelope_to": list(envelope.rcpt_tos), "from": envelope.mail_from, "message": msg,
                                      "raw": envelope.original_content or envelope.content})
        return "250 Message accepted for delivery"

    @property
    def total(self) -> int:
        """Messages received, counted once per recipient."""
        return sum(self.per_recipient.values())

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        """The kept messages once there are `count` of them (or what came within `timeout`)."""
        self._wait(lambda: len(self.messages) >= count, timeout)
        with self.lock:
            return list(self.messages)

    def wait_for_total(self, count: int, timeout: float = 20.0) -> bool:
        """Whether `count` recipients' messages arrived within `timeout` (kept or not)."""
        return self._wait(lambda: self.total >= count, timeout)

    @staticmethod
    def _wait(condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
