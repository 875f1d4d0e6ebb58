"""Real local servers for the notification sink tests: SMTP (aiosmtpd) and HTTP webhooks.

Both listen on 127.0.0.1 on a free port, record what they receive and can fail on demand.
Use them as context managers (``with mail_server() as smtp: ...``) so they always stop.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from stream0d_nb.alerts.sinks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notification,
    WebhookSignatureError,
    verify_webhook_signature,
)
from tests.servers import free_port

# ----------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    """One message as the SMTP server got it: envelope and parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        """The plain-text body, line ends as ``\n``."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")


class _MailHandler:
    """aiosmtpd handler: records messages, refuses chosen recipients or all data."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.refuse: set[str] = set()
        self.data_reply: str | None = None  # e.g. "451 4.3.0 try later" to fail DATA
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted"


@dataclass
class MailServer:
    """A running aiosmtpd on 127.0.0.1; ``received`` lists what arrived."""

    host: str
    port: int
    handler: _MailHandler
    controller: Controller

    @property
    def received(self) -> list[ReceivedMail]:
        """Messages received so far, in order."""
        with self.handler.lock:
            return list(self.handler.received)

    def refuse(self, *addresses: str) -> None:
        """Answer 550 to RCPT TO for these addresses."""
        self.handler.refuse |= set(addresses)

    def fail_data(self, reply: str | None) -> None:
        """Answer DATA with ``reply`` (e.g. ``451 ...``); None accepts again."""
        self.handler.data_reply = reply


def _authenticator(users: dict[str, str]) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if users.get(user) == password:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    return check


@contextlib.contextmanager
def mail_server(
    *,
    users: dict[str, str] | None = None,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    attempts: int = 3,
) -> Iterator[MailServer]:
    """Start an SMTP server on a free 127.0.0.1 port; stop it on exit.

    ``users`` turns on AUTH (required, allowed without TLS for the test); ``starttls``
    offers STARTTLS with that server context; ``implicit_tls`` speaks TLS from the start.
    """
    handler = _MailHandler()
    kwargs: dict[str, Any] = {}
    if users is not None:
        kwargs |= {
            "authenticator": _authenticator(users),
            "auth_required": True,
            "auth_require_tls": False,
        }
    if starttls is not None:
        kwargs |= {"tls_context": starttls, "require_starttls": True}
    if implicit_tls is not None:
        kwargs["ssl_context"] = implicit_tls
    last: Exception | None = None
    for _ in range(attempts):
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        try:
            controller.start()
        except (OSError, RuntimeError) as exc:  # port taken meanwhile
            last = exc
            continue
        try:
            yield MailServer("127.0.0.1", port, handler, controller)
        finally:
            controller.stop()
        return
    raise RuntimeError(f"SMTP test server did not start: {last}")


@dataclass
class TlsFiles:
    """A self-signed certificate for 127.0.0.1/localhost and contexts using it."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_tls_files(folder: Path) -> TlsFiles | None:
    """Create a throwaway self-signed certificate with openssl (None if it is missing)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return TlsFiles(cert, key)


# ----------------------------------------------------------------------------- webhooks


@dataclass
class ReceivedRequest:
    """One POST as the webhook server got it."""

    path: str
    headers: Message  # case-insensitive: headers["x-stream0d-key"] works
    body: bytes
    signature_error: str | None  # None: the signature checked out (or no secret set)
    status: int  # what the server answered


@dataclass
class WebhookServer:
    """A threaded HTTP server on 127.0.0.1 that records POSTs and checks signatures."""

    secret: str | None
    httpd: ThreadingHTTPServer = field(repr=False)
    thread: threading.Thread = field(repr=False)
    requests: list[ReceivedRequest] = field(default_factory=list)
    fail_statuses: list[int] = field(default_factory=list)  # answered first, one per request
    delay: float = 0.0  # seconds to wait before answering (a hanging receiver)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    @property
    def received(self) -> list[ReceivedRequest]:
        """Requests answered 2xx with a good signature, in order."""
        with self.lock:
            return [r for r in self.requests if r.status == 200 and r.signature_error is None]

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (e.g. 500, 500), then 200 again."""
        with self.lock:
            self.fail_statuses.extend(statuses)


def _handler_for(server: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if server.delay:
                server.release.wait(server.delay)
            error = None
            if server.secret is not None:
                try:
                    verify_webhook_signature(
                        server.secret,
                        body,
                        self.headers.get(TIMESTAMP_HEADER, ""),
                        self.headers.get(SIGNATURE_HEADER, ""),
                    )
                except WebhookSignatureError as exc:
                    error = str(exc)
            with server.lock:
                status = server.fail_statuses.pop(0) if server.fail_statuses else 200
                if error is not None:
                    status = 401
                server.requests.append(
                    ReceivedRequest(self.path, self.headers, body, error, status)
                )
            answer = b'{"ok": true}' if status == 200 else b"receiver says no"
            with contextlib.suppress(OSError):  # the client may have given up already
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def webhook_server(secret: str | None = "test-secret") -> Iterator[WebhookServer]:
    """Start a webhook receiver on a free 127.0.0.1 port (bound to port 0); stop on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    server = WebhookServer(secret=secret, httpd=httpd, thread=thread)
    httpd.RequestHandlerClass = _handler_for(server)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()  # let sleeping handlers finish
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# ----------------------------------------------------------------------------- data

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def make_notification(**overrides: Any) -> Notification:
    """A critical ``temp_high`` firing on ``line-1`` (fields overridable)."""
    fields: dict[str, Any] = {
        "dataset": "line-1",
        "rule": "temp_high",
        "severity": "critical",
        "state": "firing",
        "at": T0 + timedelta(minutes=5),
        "value": 87.5,
        "labels": {"team": "ops", "area": "press"},
        "description": "Zone 1 temperature above 85 degC for 5 minutes",
        "runbook": "https://wiki.example.com/runbooks/temp_high",
        "episode_start": T0,
    }
    return Notification(**(fields | overrides))
