"""A fake Mailgun on 127.0.0.1, strict the way the real API is, for the real Anymail backend.

It serves POST /v3/<domain>/messages like Mailgun's send API: HTTP basic auth `api:<key>`,
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

`FakeSendGrid` answers SendGrid's v3 mail/send the same way (JSON, one personalization per
recipient, legacy `substitutions`), with the same server, scripting and bookkeeping.
"""

import json
import re
import threading
import time
from base64 import b64decode
from collections import deque
from dataclasses import dataclass, field
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


@dataclass
class Call:
    number: int
    answer: int
    recipients: list[str]
    error: str = ""
    accepted: bool = False
    started: float = field(default_factory=time.monotonic)


class FakeMailgun:
    def __init__(self, api_key="key-fake-mailgun", domain="mg.example.org", keep_messages=True):
        self.api_key = api_key
        self.domain = domain
        self.keep_messages = keep_messages
        self.accepted: list[Delivered] = []
        self.accepted_count = 0
        self.calls: list[Call] = []
        self.refuse: set[str] = set()
        self.refuse_named = True  # name refused addresses in the error (else Mailgun's generic text)
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

    # --- the API ------------------------------------------------------------------------

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
        with self._lock:
            call = Call(number=len(self.calls) + 1, answer=200, recipients=list(to))
            self.calls.append(call)
            planned = self._script.popleft() if self._script else None
        problem = _check_payload(form)
        if problem:
            call.answer, call.error = 400, problem
            return 400, {"message": problem}, {}, 0
        refused = sorted({a for a in to if parseaddr(a)[1].lower() in self.refuse})
        if planned and planned[0] == "refuse":
            refused = sorted(set(refused) | {a for a in to if parseaddr(a)[1].lower() in {x.lower() for x in planned[1]}})
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
        self._accept(call, form, message_id)
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

    def _accept(self, call: Call, form: dict, message_id: str) -> None:
        variables = json.loads(form["recipient-variables"][0]) if "recipient-variables" in form else {}
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
        with self._lock:
            call.accepted = True
            self.accepted.extend(delivered)
            self.accepted_count += len(form["to"])


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


def _check_payload(form: dict) -> str:
    """The checks Mailgun makes before accepting (the message texts are Mailgun's)."""
    if not form.get("from"):
        return "'from' parameter is missing"
    if not form.get("to"):
        return "'to' parameter is missing"
    if len(form["to"]) > MAX_RECIPIENTS:
        return f"Too many recipients: 'to' accepts at most {MAX_RECIPIENTS}"
    if not form.get("subject"):
        return "'subject' parameter is missing"
    if not (form.get("text") or form.get("html")):
        return "Need at least one of 'text' or 'html' parameters specified"
    for address in form["to"]:
        name, addr = parseaddr(address)
        if not addr or "@" not in addr:
            return "'to' parameter is not a valid address. please check documentation"
    for name, values in form.items():
        if name.startswith("h:") and any("\r" in v or "\n" in v for v in values):
            return f"'{name}' header value contains a line break"
    uses_variables = any(_RECIPIENT_FIELD.search(v) for values in form.values() for v in values)
    if "recipient-variables" in form:
        try:
            variables = json.loads(form["recipient-variables"][0])
        except ValueError:
            return "recipient-variables is not valid JSON"
        if not isinstance(variables, dict) or not all(isinstance(v, dict) for v in variables.values()):
            return "recipient-variables must be a JSON object of objects"
        missing = [a for a in form["to"] if parseaddr(a)[1] not in variables]
        if missing:
            return f"recipient-variables has no entry for {missing[0]}"
    elif uses_variables:
        return "%recipient.*% used without recipient-variables"
    return ""


class FakeSendGrid(FakeMailgun):
    """SendGrid's v3 send API (POST /v3/mail/send) for Anymail's SendGrid backend: bearer
    auth, a JSON body with one personalization per recipient (at most 1,000), each with its
    own `substitutions` and `headers`; answers 202 with an empty body. Each key of a
    recipient's substitutions is replaced in the subject and the contents (SendGrid's docs:
    "Substitution tags will work in the Subject line, body of the email"), whatever its case
    (the docs do not say matching is case-sensitive). Scripted answers: 429 and 500."""

    def __init__(self, api_key="SG.fake-sendgrid-key", keep_messages=True):
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
        with self._lock:
            call = Call(number=len(self.calls) + 1, answer=202, recipients=to)
            self.calls.append(call)
            planned = self._script.popleft() if self._script else None
        problem = _check_sendgrid_payload(data)
        if problem:
            call.answer, call.error = 400, problem
            return 400, {"errors": [{"message": problem}]}, {}, 0
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
                    )
                )
        with self._lock:
            call.accepted = True
            self.accepted.extend(delivered)
            self.accepted_count += len(to)
        return 202, None, {"X-Message-Id": message_id}, 0


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
