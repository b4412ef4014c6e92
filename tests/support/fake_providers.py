"""Fake email providers on 127.0.0.1, strict the way the real APIs are, for the real Anymail
backends. `FakeProvider` is what they share: the HTTP server, scripted answers (`fail_next`),
refused addresses (`refuse`), what was accepted (`accepted`, `calls`), and the provider's side
of its tracking webhook (`tracking_event`: the call it would make about a message it accepted,
signed the way it signs). Each provider is one subclass; ADDING_A_PROVIDER.md says what one needs.

`FakeMailgun` serves POST /v3/<domain>/messages like Mailgun's send API: HTTP basic auth `api:<key>`,
a form body (multipart/form-data or urlencoded, both accepted by Mailgun) with `from`, `to`
(one field per recipient, at most 1,000), `subject`, `text`/`html`, `h:<Header>` fields and
`recipient-variables` (a JSON object keyed by recipient, required when `%recipient.*%`
appears). Each recipient of an accepted call gets their own message: `%recipient.<name>%`
is substituted from their variables in the subject, bodies and headers, and the result is
kept in `accepted` for assertions (or only counted, with `keep_messages=False`, for load).
Mailgun's documentation does not say whether `%RECIPIENT.NAME%` matches `%recipient.name%`,
so the fake assumes the worse for us: names match whatever their case.

Scripted answers (`fail_next`): 429 with Retry-After, 500, a time-out after accepting (the
call is recorded as accepted, then the answer comes too late), and 400 refusing named
recipients. `refuse` lists addresses refused whenever they appear (as Mailgun does for an
address it considers invalid).

`ChaosMailgun` adds what chaos runs need: a latency per call, when each answer was written,
and a random mix of failures.

`FakeSendGrid` answers SendGrid's v3 mail/send the same way (JSON, one personalization per
recipient, legacy `substitutions`), with the same server, scripting and bookkeeping.

`FakePostmark` answers Postmark's /email/batch and /email (JSON messages, each with its own
headers; Postmark fills nothing in, and answers each message of a batch on its own).
"""

import hashlib
import hmac
import json
import random
import re
import threading
import time
import uuid
from base64 import b64decode, b64encode
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

MAX_RECIPIENTS = 1000
_RECIPIENT_FIELD = re.compile(r"%recipient\.([^%]+)%", re.IGNORECASE)


@dataclass
class Delivered:
    """One recipient's copy of an accepted call, after substitution."""

    to: str
    subject: str
    text: str
    html: str
    headers: dict
    message_id: str
    call: int
    extra: dict = field(default_factory=dict)  # what the provider's events repeat (custom args, metadata)


@dataclass
class Call:
    number: int
    answer: int
    recipients: list[str]
    error: str = ""
    accepted: bool = False
    started: float = field(default_factory=time.monotonic)


class FakeProvider:
    """A provider's API on loopback. Subclasses answer in `_handle(path, headers, body)` with
    (status, JSON payload or None, headers, seconds to hang before answering), give the
    settings that point Anymail at them (`env`) and build their webhook events."""

    esp = ""  # Anymail's name: EMAIL_PROVIDER, /anymail/<esp>/tracking/
    backend = ""  # Anymail's backend for it (EMAIL_BACKEND)
    webhook_secret = "fake-provider:webhook-password"  # basic auth on the tracking webhook

    def __init__(self, api_key: str, keep_messages=True):
        self.api_key = api_key
        self.keep_messages = keep_messages
        self.accepted: list[Delivered] = []
        self.accepted_count = 0
        self.calls: list[Call] = []
        self.refuse: set[str] = set()
        self._script: deque = deque()
        self._lock = threading.Lock()
        self.hang_seconds = 3.0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- control ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def env(self) -> dict:
        """Environment for a process that should send here through Anymail's backend."""
        raise NotImplementedError

    def anymail_settings(self) -> dict:
        """The same as ANYMAIL entries, for this process (with the `settings` fixture)."""
        return {name: value for name, value in self.env().items() if name != "EMAIL_PROVIDER"}

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def fail_next(self, *answers):
        """Queue answers for the next calls: ("429", seconds), ("500",), ("timeout",),
        ("refuse", [addresses])."""
        with self._lock:
            self._script.extend(answers)

    def recipients(self) -> list[str]:
        return [d.to for d in self.accepted]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout
        while self.accepted_count < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.accepted

    def refused(self, addresses) -> list[str]:
        """Those of `addresses` this provider refuses whenever they appear (`refuse`)."""
        if not self.refuse:
            return []
        refused = {a.lower() for a in self.refuse}
        return [a for a in addresses if parseaddr(a)[1].lower() in refused]

    @staticmethod
    def refused_by_script(planned, addresses) -> list[str]:
        """Those of `addresses` a scripted ("refuse", [addresses]) answer refuses."""
        if not planned or planned[0] != "refuse":
            return []
        refused = {a.lower() for a in planned[1]}
        return [a for a in addresses if parseaddr(a)[1].lower() in refused]

    # --- the API ------------------------------------------------------------------------

    def _begin_call(self, recipients: list[str], answer: int) -> tuple[Call, tuple | None]:
        """Record a call and take the next scripted answer (None: answer normally)."""
        with self._lock:
            call = Call(number=len(self.calls) + 1, answer=answer, recipients=list(recipients))
            self.calls.append(call)
            planned = self._script.popleft() if self._script else None
        return call, planned

    def _record_accepted(self, call: Call, delivered: list[Delivered], count: int) -> None:
        with self._lock:
            call.accepted = True
            self.accepted.extend(delivered)
            self.accepted_count += count

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload, headers, hang = fake._handle(self.path, self.headers, body)
                if hang:
                    time.sleep(hang)
                data = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if payload is not None:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the time-out case)

        return Handler

    # --- the tracking webhook -------------------------------------------------------------

    def webhook_settings(self) -> dict:
        """ANYMAIL entries our webhook needs to accept this provider's events."""
        return {"WEBHOOK_SECRET": self.webhook_secret}

    def tracking_event(self, kind: str, message: Delivered) -> tuple[str, dict]:
        """The call this provider makes to /anymail/<esp>/tracking/ about `message` (one it
        accepted): the JSON body and the HTTP headers, basic auth and signature included.
        `kind`: "delivered", "soft_bounce" (mailbox full: try later) or "hard_bounce"."""
        body = json.dumps(self._event_payload(kind, message))
        auth = "Basic " + b64encode(self.webhook_secret.encode()).decode()
        return body, {"Authorization": auth, **self._event_signature(body)}

    def _event_payload(self, kind: str, message: Delivered):
        raise NotImplementedError

    def _event_signature(self, body: str) -> dict:
        return {}  # providers that sign put their headers here


class FakeMailgun(FakeProvider):
    esp = "mailgun"
    backend = "anymail.backends.mailgun.EmailBackend"

    def __init__(self, api_key="key-fake-mailgun", domain="mg.example.org", keep_messages=True):
        self.domain = domain
        self.refuse_named = True  # name refused addresses in the error (else Mailgun's generic text)
        self.webhook_signing_key = "fake-mailgun-webhook-signing-key"
        super().__init__(api_key, keep_messages)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def env(self) -> dict:
        """Settings for a process that should send here through Anymail's Mailgun backend."""
        return {
            "EMAIL_PROVIDER": "mailgun",
            "MAILGUN_API_KEY": self.api_key,
            "MAILGUN_SENDER_DOMAIN": self.domain,
            "MAILGUN_API_URL": self.api_url,
        }

    def _handle(self, path, headers, body):
        if not self._authorized(headers.get("Authorization", "")):
            return 401, {"message": "Invalid private key"}, {}, 0
        if path.rstrip("/") != f"/v3/{self.domain}/messages":
            return 404, {"message": "Domain not found"}, {}, 0
        try:
            form = _parse_form(headers.get("Content-Type", ""), body)
        except ValueError as exc:
            return 400, {"message": str(exc)}, {}, 0
        to = form.get("to", [])
        call, planned = self._begin_call(to, 200)
        problem, variables = _check_payload(form)
        if problem:
            call.answer, call.error = 400, problem
            return 400, {"message": problem}, {}, 0
        refused = sorted(set(self.refused(to)) | set(self.refused_by_script(planned, to)))
        if refused:
            message = (
                f"'to' parameter is not a valid address: {', '.join(refused)}"
                if self.refuse_named
                else "'to' parameter is not a valid address. please check documentation"
            )
            call.answer, call.error = 400, message
            return 400, {"message": message}, {}, 0
        if planned and planned[0] == "429":
            call.answer = 429
            return 429, {"message": "Too many requests"}, {"Retry-After": str(planned[1])}, 0
        if planned and planned[0] == "500":
            call.answer = 500
            return 500, {"message": "Internal error"}, {}, 0
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{call.number}.{id(call)}@{self.domain}>"
        self._accept(call, form, message_id, variables)
        if planned and planned[0] == "timeout":
            return 200, {"id": message_id, "message": "Queued. Thank you."}, {}, self.hang_seconds
        return 200, {"id": message_id, "message": "Queued. Thank you."}, {}, 0

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            return b64decode(encoded).decode() == f"api:{self.api_key}"
        except (ValueError, UnicodeDecodeError):
            return False

    def _accept(self, call: Call, form: dict, message_id: str, variables: dict) -> None:
        delivered = []
        if self.keep_messages:
            header_fields = {name[2:]: values[-1] for name, values in form.items() if name.startswith("h:")}
            for address in form["to"]:
                own = {name.lower(): value for name, value in variables.get(parseaddr(address)[1], {}).items()}

                def fill(text, own=own):
                    return _RECIPIENT_FIELD.sub(lambda m: str(own.get(m.group(1).lower(), "")), text)

                delivered.append(
                    Delivered(
                        to=parseaddr(address)[1],
                        subject=fill(form["subject"][0]),
                        text=fill(form.get("text", [""])[0]),
                        html=fill(form.get("html", [""])[0]),
                        headers={name: fill(value) for name, value in header_fields.items()},
                        message_id=message_id,
                        call=call.number,
                    )
                )
        self._record_accepted(call, delivered, len(form["to"]))

    # Mailgun signs its webhook calls (HMAC-SHA256 of timestamp + token with the webhook
    # signing key) in the body, and its events name the message by its bare id.

    def webhook_settings(self) -> dict:
        return {**super().webhook_settings(), "MAILGUN_WEBHOOK_SIGNING_KEY": self.webhook_signing_key}

    def _event_payload(self, kind: str, message: Delivered) -> dict:
        timestamp, token = str(int(time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
        signature = hmac.new(self.webhook_signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
        status = {
            "delivered": ("delivered", {}, {"code": 250, "message": "OK", "description": ""}),
            "soft_bounce": ("failed", {"severity": "temporary", "reason": "generic"},
                            {"code": 452, "message": "4.2.2 Mailbox full", "description": "Mailbox full"}),
            "hard_bounce": ("failed", {"severity": "permanent", "reason": "bounce"},
                            {"code": 550, "message": "5.1.1 No such mailbox", "description": "No such mailbox"}),
        }
        event, fields, delivery_status = status[kind]
        data = {
            "event": event, "id": uuid.uuid4().hex[:22], "timestamp": time.time(),
            "log-level": "error" if event == "failed" else "info",
            "recipient": message.to, "recipient-domain": message.to.split("@")[1],
            "message": {"headers": {"to": message.to, "message-id": message.message_id.strip("<>"),
                                    "from": "papers@" + self.domain, "subject": message.subject}, "attachments": [], "size": 4711},
            "delivery-status": {"attempt-no": 1, "session-seconds": 0.1, **delivery_status},
            "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
            "tags": [], "user-variables": {}, **fields,
        }
        return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_PART_NAME = re.compile(rb'^content-disposition:\s*form-data;\s*name="([^"]*)"', re.I | re.M)


def _parse_form(content_type: str, body: bytes) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    if content_type.startswith("multipart/form-data"):
        match = _BOUNDARY.search(content_type)
        if not match:
            raise ValueError("multipart body without a boundary")
        delimiter = b"--" + match.group(1).encode()
        chunks = body.split(delimiter)
        if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
            raise ValueError("malformed multipart body")
        for chunk in chunks[1:-1]:
            head, sep, value = chunk.partition(b"\r\n\r\n")
            name = _PART_NAME.search(head)
            if not sep or not name or not chunk.startswith(b"\r\n") or not value.endswith(b"\r\n"):
                raise ValueError("malformed multipart part")
            form.setdefault(name.group(1).decode(), []).append(value[:-2].decode("utf-8"))
    elif content_type.startswith("application/x-www-form-urlencoded"):
        for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)):
            form.setdefault(name, []).append(value)
    else:
        raise ValueError(f"unsupported Content-Type {content_type!r}")
    return form


def _check_payload(form: dict) -> tuple[str, dict]:
    """The checks Mailgun makes before accepting (the message texts are Mailgun's): (what is
    wrong, or ""; the recipient-variables, read once)."""
    if not form.get("from"):
        return "'from' parameter is missing", {}
    if not form.get("to"):
        return "'to' parameter is missing", {}
    if len(form["to"]) > MAX_RECIPIENTS:
        return f"Too many recipients: 'to' accepts at most {MAX_RECIPIENTS}", {}
    if not form.get("subject"):
        return "'subject' parameter is missing", {}
    if not (form.get("text") or form.get("html")):
        return "Need at least one of 'text' or 'html' parameters specified", {}
    addresses = [parseaddr(address)[1] for address in form["to"]]
    if not all(addr and "@" in addr for addr in addresses):
        return "'to' parameter is not a valid address. please check documentation", {}
    for name, values in form.items():
        if name.startswith("h:") and any("\r" in v or "\n" in v for v in values):
            return f"'{name}' header value contains a line break", {}
    uses_variables = any(_RECIPIENT_FIELD.search(v) for values in form.values() for v in values)
    if "recipient-variables" in form:
        try:
            variables = json.loads(form["recipient-variables"][0])
        except ValueError:
            return "recipient-variables is not valid JSON", {}
        if not isinstance(variables, dict) or not all(isinstance(v, dict) for v in variables.values()):
            return "recipient-variables must be a JSON object of objects", {}
        missing = [a for a, addr in zip(form["to"], addresses) if addr not in variables]
        if missing:
            return f"recipient-variables has no entry for {missing[0]}", {}
        return "", variables
    elif uses_variables:
        return "%recipient.*% used without recipient-variables", {}
    return "", {}


# A call counts as in flight from its arrival at the provider until its answer was written,
# plus this long for the worker to read the answer and record it.
RECORD_GRACE = 0.25


class ChaosMailgun(FakeMailgun):
    """The fake Mailgun with what chaos runs need on top: a latency per call (a real
    API takes a few hundred ms, the window a kill lands in), the moment each answer was
    written (which calls were in flight when), and a random mix of failures per call:
    `mix=[("500", 0.10), ("429", 0.05), ("timeout", 0.03)]`."""

    def __init__(self, latency: float = 0.0, mix=(), seed: int | None = None, retry_after=(1, 3), **kwargs):
        self.latency = latency
        self.mix = list(mix)
        self.random = random.Random(seed)
        self.retry_after = retry_after
        self._local = threading.local()
        # One call at a time through the bookkeeping (answers are written in parallel).
        self._plan_lock = threading.Lock()
        super().__init__(**kwargs)

    def _draw(self):
        roll = self.random.random()
        for answer, share in self.mix:
            if roll < share:
                return (answer, self.random.randint(*self.retry_after)) if answer == "429" else (answer,)
            roll -= share
        return None

    def _handle(self, path, headers, body):
        with self._plan_lock:
            # Answers queued with fail_next() come first; otherwise draw one from the mix.
            planned = self._script[0] if self._script else self._draw()
            drawn = planned is not None and not self._script
            if drawn:
                self.fail_next(planned)
            before = len(self.calls)
            status, payload, answer_headers, hang = super()._handle(path, headers, body)
            call = self.calls[before] if len(self.calls) > before else None
            if drawn and call is None:
                self._script.pop()  # refused before it became a call (auth, path): not used
        if call is not None:
            call.planned = planned[0] if planned else ""
            call.retry_after = planned[1] if planned and planned[0] == "429" else None
            call.finished = None
            self._local.call = call
        return status, payload, answer_headers, hang + self.latency

    def _handler_class(self):
        base = super()._handler_class()
        fake = self

        class TimedHandler(base):
            def do_POST(self):
                fake._local.call = None
                try:
                    super().do_POST()
                finally:
                    call = fake._local.call
                    if call is not None:
                        call.finished = time.monotonic()

        return TimedHandler

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.accepted.clear()
            self.accepted_count = 0
            self._script.clear()

    def per_recipient(self) -> Counter:
        """Messages the provider accepted, per address."""
        counts: Counter = Counter()
        for call in list(self.calls):
            if call.accepted:
                counts.update(parseaddr(r)[1].lower() for r in call.recipients)
        return counts

    def in_flight(self, at: float, grace: float = RECORD_GRACE) -> list:
        """Accepted calls in flight at monotonic time `at`."""
        return [
            c for c in list(self.calls)
            if c.accepted and c.started <= at and (getattr(c, "finished", None) is None or c.finished + grace >= at)
        ]


class FakeSendGrid(FakeProvider):
    """SendGrid's v3 send API (POST /v3/mail/send) for Anymail's SendGrid backend: bearer
    auth, a JSON body with one personalization per recipient (at most 1,000), each with its
    own `substitutions` and `headers`; answers 202 with an empty body. Each key of a
    recipient's substitutions is replaced in the subject and the contents (SendGrid's docs:
    "Substitution tags will work in the Subject line, body of the email"), whatever its case
    (the docs do not say matching is case-sensitive). A refused address is a 400 naming the
    field, not the address ("personalizations.2.to.0.email"), as SendGrid does. Scripted
    answers: 429, 500, a time-out after accepting, a refusal."""

    esp = "sendgrid"
    backend = "anymail.backends.sendgrid.EmailBackend"

    def __init__(self, api_key="SG.fake-sendgrid-key", keep_messages=True):
        # SendGrid signs its Event Webhook with ECDSA (P-256); the account shows the public key.
        from cryptography.hazmat.primitives.asymmetric import ec

        self.webhook_key = ec.generate_private_key(ec.SECP256R1())
        super().__init__(api_key=api_key, keep_messages=keep_messages)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3/"

    def env(self) -> dict:
        return {"EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": self.api_key, "SENDGRID_API_URL": self.api_url}

    def _handle(self, path, headers, body):
        if headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return 401, {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked"}]}, {}, 0
        if path.rstrip("/") != "/v3/mail/send":
            return 404, {"errors": [{"message": "Not Found"}]}, {}, 0
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {"errors": [{"message": "Bad Request"}]}, {}, 0
        personalizations = data.get("personalizations") or []
        to = [r.get("email", "") for p in personalizations for r in p.get("to", [])]
        call, planned = self._begin_call(to, 202)
        problem = _check_sendgrid_payload(data)
        if problem:
            call.answer, call.error = 400, problem
            return 400, {"errors": [{"message": problem}]}, {}, 0
        refused = set(self.refused(to)) | set(self.refused_by_script(planned, to))
        if refused:
            errors = [
                {"message": "Does not contain a valid address.", "field": f"personalizations.{i}.to.{j}.email",
                 "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"}
                for i, p in enumerate(personalizations) for j, r in enumerate(p.get("to", [])) if r.get("email") in refused
            ]
            call.answer, call.error = 400, errors[0]["message"]
            return 400, {"errors": errors}, {}, 0
        if planned and planned[0] == "429":
            call.answer = 429
            return 429, {"errors": [{"message": "too many requests"}]}, {"Retry-After": str(planned[1])}, 0
        if planned and planned[0] == "500":
            call.answer = 500
            return 500, {"errors": [{"message": "internal error"}]}, {}, 0
        message_id = f"fake{call.number}{id(call):x}"
        delivered = []
        if self.keep_messages:
            contents = {c["type"]: c["value"] for c in data["content"]}
            for personalization in personalizations:
                fill = _substituter(personalization.get("substitutions") or {})
                delivered.append(
                    Delivered(
                        to=personalization["to"][0]["email"],
                        subject=fill(personalization.get("subject") or data["subject"]),
                        text=fill(contents.get("text/plain", "")),
                        html=fill(contents.get("text/html", "")),
                        headers={**data.get("headers", {}), **personalization.get("headers", {})},
                        message_id=message_id,
                        call=call.number,
                        extra={**data.get("custom_args", {}), **personalization.get("custom_args", {})},
                    )
                )
        self._record_accepted(call, delivered, len(to))
        hang = self.hang_seconds if planned and planned[0] == "timeout" else 0
        return 202, None, {"X-Message-Id": message_id}, hang

    # SendGrid's Event Webhook: a JSON array of events, each repeating the message's custom
    # args (Anymail's anymail_id among them), signed with ECDSA over timestamp + body.

    def webhook_settings(self) -> dict:
        from cryptography.hazmat.primitives import serialization

        public = self.webhook_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {**super().webhook_settings(), "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": b64encode(public).decode()}

    def _event_payload(self, kind: str, message: Delivered) -> list:
        fields = {
            "delivered": {"event": "delivered", "response": "250 OK"},
            "soft_bounce": {"event": "bounce", "type": "blocked", "status": "4.2.2", "reason": "452 4.2.2 Mailbox full"},
            "hard_bounce": {"event": "bounce", "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 No such user"},
        }[kind]
        return [{
            "email": message.to, "timestamp": int(time.time()), "smtp-id": f"<{message.message_id}@ismtpd-555>",
            "sg_event_id": uuid.uuid4().hex, "sg_message_id": f"{message.message_id}.filter0001.16648.5515E0B88.0",
            "category": [], **message.extra, **fields,
        }]

    def _event_signature(self, body: str) -> dict:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        timestamp = str(int(time.time()))
        signature = self.webhook_key.sign(timestamp.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}


def _substituter(substitutions: dict):
    if not substitutions:
        return lambda text: text
    values = {key.lower(): value for key, value in substitutions.items()}
    keys = re.compile("|".join(re.escape(k) for k in sorted(substitutions, key=len, reverse=True)), re.IGNORECASE)
    return lambda text: keys.sub(lambda m: values[m.group(0).lower()], text)


def _check_sendgrid_payload(data) -> str:
    """The checks SendGrid makes before accepting (messages shortened from SendGrid's)."""
    if not isinstance(data, dict):
        return "Bad Request"
    personalizations = data.get("personalizations")
    if not isinstance(personalizations, list) or not 1 <= len(personalizations) <= MAX_RECIPIENTS:
        return "The personalizations field is required and must have at least one personalization."
    if not (data.get("from") or {}).get("email"):
        return "The from object must be provided for every email send."
    for personalization in personalizations:
        if not personalization.get("to") or not all("@" in (r.get("email") or "") for r in personalization["to"]):
            return "Each personalization needs a 'to' with a valid email address."
        if not (personalization.get("subject") or data.get("subject")):
            return "The subject is required."
        substitutions = personalization.get("substitutions") or {}
        if not all(isinstance(v, str) for v in substitutions.values()):
            return "Substitutions must be strings."
        if len(json.dumps(substitutions).encode()) > 50_000:
            return "Substitutions are limited to 50,000 bytes per personalization block."
    content = data.get("content") or []
    if not content or any(not c.get("value") for c in content):
        return "The content value must be a string at least one character in length."
    if content[0].get("type") != "text/plain" and any(c.get("type") == "text/plain" for c in content):
        return "If present, text/plain must be first."
    for name, value in (data.get("headers") or {}).items():
        if "\r" in value or "\n" in value:
            return f"Invalid header value for {name}"
    return ""


POSTMARK_MAX_BATCH = 500
POSTMARK_MAX_RECIPIENTS = 50  # To, Cc and Bcc of one message together
POSTMARK_STREAMS = {"outbound", "broadcast"}  # the server's transactional and broadcast streams


class FakePostmark(FakeProvider):
    """Postmark's send API for Anymail's Postmark backend: POST /email/batch (a JSON array of
    at most 500 messages) and /email (one message), with the X-Postmark-Server-Token header.
    Each message has From, To, Subject, HtmlBody and/or TextBody, Headers as [{Name, Value}]
    and an optional MessageStream. Postmark fills nothing in outside its stored templates:
    each message arrives as it was sent. A batch is answered 200 with one result per message,
    in order (ErrorCode 0 and a MessageID, or that message's own error: 406 for an inactive
    recipient, 300 for an invalid one); a single message's error is a 422. Whole calls: 401
    for a bad token, 422 for bad JSON or too many messages. Scripted answers: 429, 500, a
    time-out after accepting, a refusal (the addresses answered as inactive), and a 422 with
    a given ErrorCode and Message for the whole call."""

    esp = "postmark"
    backend = "anymail.backends.postmark.EmailBackend"

    def __init__(self, api_key="fake-postmark-server-token", keep_messages=True):
        super().__init__(api_key=api_key, keep_messages=keep_messages)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict:
        return {"EMAIL_PROVIDER": "postmark", "POSTMARK_SERVER_TOKEN": self.api_key, "POSTMARK_API_URL": self.api_url}

    def _handle(self, path, headers, body):
        token = headers.get("X-Postmark-Server-Token", "")
        if token != self.api_key:
            message = "Request does not contain a valid Server token." if token else (
                "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either "
                "X-Postmark-Server-Token or X-Postmark-Account-Token.")
            return 401, {"ErrorCode": 10, "Message": message}, {}, 0
        batch = path.rstrip("/") == "/email/batch"
        if not batch and path.rstrip("/") != "/email":
            return 404, {"ErrorCode": 404, "Message": "Not found."}, {}, 0
        if not headers.get("Content-Type", "").startswith("application/json"):
            return 422, {"ErrorCode": 409, "Message": "JSON required."}, {}, 0
        try:
            data = json.loads(body)
        except ValueError:
            return 422, {"ErrorCode": 402, "Message": "Received invalid JSON input."}, {}, 0
        messages = data if batch else [data]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return 422, {"ErrorCode": 403, "Message": "Your JSON input was incompatible with the request."}, {}, 0
        if batch and len(messages) > POSTMARK_MAX_BATCH:
            return 422, {"ErrorCode": 410, "Message": f"Too many batch messages: at most {POSTMARK_MAX_BATCH}."}, {}, 0
        to = [m.get("To") or "" for m in messages]
        call, planned = self._begin_call(to, 200)
        if planned and planned[0] == "429":
            call.answer = 429
            return 429, {"ErrorCode": 0, "Message": "Rate limit exceeded."}, {"Retry-After": str(planned[1])}, 0
        if planned and planned[0] == "500":
            call.answer = 500
            return 500, {"ErrorCode": 0, "Message": "Internal Server Error"}, {}, 0
        if planned and planned[0] == "422":  # ("422", ErrorCode, Message): the whole call refused
            call.answer, call.error = 422, planned[2]
            return 422, {"ErrorCode": planned[1], "Message": planned[2]}, {}, 0
        inactive = {parseaddr(a)[1].lower() for a in self.refused(to) + self.refused_by_script(planned, to)}
        results, delivered, sent = [], [], 0
        for message in messages:
            result = _postmark_message_error(message, inactive)
            if result is None:
                message_id = str(uuid.uuid4())
                result = {"To": message["To"], "SubmittedAt": datetime.now(timezone.utc).isoformat(),
                          "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}
                sent += 1
                if self.keep_messages:
                    delivered.append(Delivered(
                        to=parseaddr(message["To"])[1], subject=message.get("Subject") or "",
                        text=message.get("TextBody") or "", html=message.get("HtmlBody") or "",
                        headers={h["Name"]: h["Value"] for h in message.get("Headers") or []},
                        message_id=message_id, call=call.number,
                        extra={"MessageStream": message.get("MessageStream") or "outbound", "From": message["From"],
                               "Metadata": message.get("Metadata") or {}, "Tag": message.get("Tag") or ""},
                    ))
            results.append(result)
        if sent:
            self._record_accepted(call, delivered, sent)
        if not batch and results[0]["ErrorCode"]:
            call.answer, call.error = 422, results[0]["Message"]
            return 422, results[0], {}, 0
        hang = self.hang_seconds if planned and planned[0] == "timeout" else 0
        return 200, results if batch else results[0], {}, hang

    # Postmark's webhooks post one JSON record per event, authenticated by basic auth only.

    def _event_payload(self, kind: str, message: Delivered) -> dict:
        common = {"MessageID": message.message_id, "ServerID": 23, "MessageStream": message.extra["MessageStream"],
                  "Tag": message.extra["Tag"], "Metadata": message.extra["Metadata"]}
        now = datetime.now(timezone.utc).isoformat()
        if kind == "delivered":
            return {"RecordType": "Delivery", "Recipient": message.to, "DeliveredAt": now,
                    "Details": "smtp;250 2.0.0 OK", **common}
        hard = kind == "hard_bounce"
        return {
            "RecordType": "Bounce", "ID": random.randint(1, 2**62), "Email": message.to, "From": message.extra["From"],
            "BouncedAt": now, "Subject": message.subject, "DumpAvailable": False, "Inactive": hard, "CanActivate": True,
            "Type": "HardBounce" if hard else "SoftBounce", "TypeCode": 1 if hard else 4096,
            "Name": "Hard bounce" if hard else "Soft bounce",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found)." if hard
            else "The server could not temporarily deliver your message (ex: Message is delayed due to network troubles).",
            "Details": "smtp;550 5.1.1 No such user" if hard else "smtp;452 4.2.2 Mailbox full", "Content": "", **common,
        }


def _postmark_message_error(message: dict, inactive: set[str]) -> dict | None:
    """The result Postmark gives a message it does not send (its error codes and texts), or
    None when it sends it."""

    def error(code, text):
        return {"ErrorCode": code, "Message": text}

    if "@" not in parseaddr(message.get("From") or "")[1]:
        return error(300, f"Invalid 'From' address: '{message.get('From') or ''}'.")
    addresses = [a.strip() for a in (message.get("To") or "").split(",") if a.strip()]
    if not addresses:
        return error(300, "Zero recipients specified")
    if len(addresses) > POSTMARK_MAX_RECIPIENTS:
        return error(300, f"Maximum of {POSTMARK_MAX_RECIPIENTS} recipients allowed.")
    for address in addresses:
        if "@" not in parseaddr(address)[1]:
            return error(300, f"Invalid 'To' address: '{address}'.")
    if not (message.get("HtmlBody") or message.get("TextBody")):
        return error(300, "Provide either email TextBody or HtmlBody or both.")
    for header in message.get("Headers") or []:
        if not isinstance(header, dict) or not isinstance(header.get("Name"), str) or not isinstance(header.get("Value"), str):
            return error(300, "Header values must be strings with a Name and a Value.")
        if "\r" in header["Value"] or "\n" in header["Value"]:
            return error(300, f"Invalid value for header '{header['Name']}'.")
    if (message.get("MessageStream") or "outbound") not in POSTMARK_STREAMS:
        return error(1235, f"The message stream for the provided 'ID' was not found: '{message['MessageStream']}'.")
    refused = [parseaddr(a)[1].lower() for a in addresses if parseaddr(a)[1].lower() in inactive]
    if refused and len(refused) == len(addresses):
        return error(406, "You tried to send to recipient(s) that have been marked as inactive.\n"
                          f"Found inactive addresses: {', '.join(refused)}.\n"
                          "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.")
    return None
