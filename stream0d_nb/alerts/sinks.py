"""Notification sinks: what an alert notification holds and where it can be sent.

``Notification`` is the message (rendered as a subject, plain text or JSON); ``Sink`` is
the one small interface every destination implements (``send`` or raise ``SinkError``).
Kinds: ``email`` (SMTP), ``webhook`` (signed JSON POST) and ``log`` (Python logging plus an
in-app list and an optional JSON-lines file). Each kind has a pydantic config whose repr
hides secrets; ``sink_from_config`` builds any kind from a plain dict.

Webhook receivers verify requests with ``verify_webhook_signature`` (see its docstring):
HMAC-SHA256 over ``<timestamp>.<raw body>`` with the shared secret.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import math
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, cast

import pydantic
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from stream0d_nb import __version__
from stream0d_nb.errors import Stream0dError, ValidationError
from stream0d_nb.specs import check_slug

Severity = Literal["critical", "major", "minor", "warning", "info"]
# Most severe first; rank 0 is the most severe.
SEVERITIES: tuple[Severity, ...] = ("critical", "major", "minor", "warning", "info")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
State = Literal["firing", "resolved", "pending", "ok", "nodata", "error"]

SIGNATURE_HEADER = "X-Stream0d-Signature"
TIMESTAMP_HEADER = "X-Stream0d-Timestamp"
KEY_HEADER = "X-Stream0d-Key"
SEVERITY_HEADER = "X-Stream0d-Severity"
PAYLOAD_VERSION = 1
EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")

log = logging.getLogger(__name__)


class SinkError(Stream0dError, RuntimeError):
    """A sink could not deliver a notification; ``reason`` says why.

    ``retryable`` is False when trying again cannot help (authentication refused, HTTP 4xx,
    recipients refused): the dispatcher then stops retrying.
    """

    def __init__(self, sink: str, reason: str, *, retryable: bool = True) -> None:
        self.sink = sink
        self.reason = reason
        self.retryable = retryable
        super().__init__(f"sink {sink!r}: {reason}")


class WebhookSignatureError(Stream0dError, ValueError):
    """A webhook request's signature or timestamp does not check out."""


# ----------------------------------------------------------------------------- notification


def _iso(t: datetime) -> str:
    """``2024-05-01T12:00:00Z`` (microseconds only when present)."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


MAX_KEY = 512
"""Longest notification key (``alert_deliveries.key`` is a VARCHAR(512))."""


class Notification(BaseModel):
    """One alert notification: a state change of a rule on a series of a dataset.

    Times are timezone-aware and stored in UTC. ``key`` identifies the notification
    (dataset/rule/series/episode start/state[/repeat]) so sinks and stores can de-duplicate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(..., min_length=1)
    rule: str = Field(..., min_length=1)
    series: str = Field("", description="Which series of the rule (channel, group); '' if one.")
    severity: Severity
    state: State
    at: datetime = Field(..., description="When the state changed (UTC).")
    value: float | None = Field(None, description="The value that triggered (peak, last...).")
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    runbook: str = Field("", description="Link or text: what to do about it.")
    episode_start: datetime
    episode_end: datetime | None = None
    repeat: int = Field(0, ge=0, description="Re-notification number while still firing.")

    @field_validator("at", "episode_start", "episode_end")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError(f"time {v.isoformat()} must be timezone-aware (e.g. UTC)")
        return v.astimezone(UTC)

    @model_validator(mode="after")
    def _episode_order(self) -> Self:
        if self.episode_end is not None and self.episode_end < self.episode_start:
            raise ValueError(
                f"episode_end {_iso(self.episode_end)} is before "
                f"episode_start {_iso(self.episode_start)}"
            )
        return self

    @property
    def key(self) -> str:
        """Stable identity for de-duplication: the same alert event always gives the same key.

        At most ``MAX_KEY`` characters (the registry's column): a longer one (long series
        labels, percent-encoded) keeps its head and ends with the sha256 of the whole key.
        """
        parts = [self.dataset, self.rule, self.series, _iso(self.episode_start), self.state]
        key = "/".join(urllib.parse.quote(p, safe="-_.:~") for p in parts)
        if self.repeat:
            key = f"{key}#{self.repeat}"
        if len(key) > MAX_KEY:
            digest = hashlib.sha256(key.encode()).hexdigest()
            key = f"{key[: MAX_KEY - len(digest) - 8]}~sha256:{digest}"
        return key

    def summary(self) -> str:
        """One line, used as e-mail subject: ``[CRITICAL] line-1: temp_high firing``."""
        series = f" ({self.series})" if self.series else ""
        text = f"[{self.severity.upper()}] {self.dataset}: {self.rule}{series} {self.state}"
        return " ".join(text.split())  # one line: no header injection, no stray newlines

    def body_text(self) -> str:
        """A plain-text rendering for people (e-mail body, log line details)."""
        end = _iso(self.episode_end) if self.episode_end else "open"
        rows = [
            ("Dataset", self.dataset),
            ("Rule", self.rule),
            ("Series", self.series or "-"),
            ("Severity", self.severity),
            ("State", self.state),
            ("At", _iso(self.at)),
            ("Value", "-" if self.value is None else repr(self.value)),
            ("Episode", f"{_iso(self.episode_start)} -> {end}"),
        ]
        if self.labels:
            rows.append(("Labels", ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))))
        lines = [self.summary(), ""] + [f"{k + ':':<10} {v}" for k, v in rows]
        if self.description:
            lines += ["", "Description:", self.description]
        if self.runbook:
            lines += ["", "Runbook:", self.runbook]
        lines += ["", f"Key: {self.key}", f"-- stream0d_nb {__version__}"]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the webhook payload): fields, ``key``, ``summary``, ``version``.

        Non-finite values (NaN, inf) become ``null`` since JSON has no such numbers.
        """
        value = self.value if self.value is None or math.isfinite(self.value) else None
        return {
            "version": PAYLOAD_VERSION,
            "key": self.key,
            "summary": self.summary(),
            "dataset": self.dataset,
            "rule": self.rule,
            "series": self.series,
            "severity": self.severity,
            "state": self.state,
            "at": _iso(self.at),
            "value": value,
            "labels": dict(sorted(self.labels.items())),
            "description": self.description,
            "runbook": self.runbook,
            "episode_start": _iso(self.episode_start),
            "episode_end": _iso(self.episode_end) if self.episode_end else None,
            "repeat": self.repeat,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        """Rebuild from ``as_json()`` output (derived fields are ignored)."""
        fields = {k: v for k, v in data.items() if k in cls.model_fields}
        return cls.model_validate(fields)


# ----------------------------------------------------------------------------- configs


class SinkConfig(BaseModel):
    """Settings shared by every sink kind; secrets are ``SecretStr`` (masked in repr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., description="Unique name used by routes, e.g. 'ops-mail'.")
    kind: str
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds per network operation.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return check_slug(v, "sink name")

    def dump_with_secrets(self) -> dict[str, Any]:
        """A JSON-ready dict with secrets in clear, for a store that keeps them safe.

        ``sink_from_config`` accepts it back; ``repr`` and ``model_dump_json`` mask them.
        """
        return cast(dict[str, Any], _reveal(self.model_dump(mode="python", by_alias=True)))


def _reveal(value: Any) -> Any:
    """Secrets to their values and paths to text, recursively."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


class EmailSinkConfig(SinkConfig):
    """SMTP e-mail: ``security`` is ``starttls`` (port 587), ``ssl`` (465) or ``none``."""

    kind: Literal["email"] = "email"
    host: str = Field(..., min_length=1)
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    allow_insecure_auth: bool = Field(
        False, description="Allow a password over an unencrypted connection (tests only)."
    )
    ca_file: Path | None = Field(None, description="CA bundle to trust (self-signed servers).")
    verify_tls: bool = True
    sender: str = Field(..., alias="from", description="From address.")
    to: list[str] = Field(..., min_length=1)
    subject_prefix: str = ""

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("sender")
    @classmethod
    def _sender_ok(cls, v: str) -> str:
        if not EMAIL_RE.match(v.strip()):
            raise ValueError(f"from address {v!r} is not an e-mail address")
        return v.strip()

    @field_validator("to")
    @classmethod
    def _to_ok(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not EMAIL_RE.match(a.strip())]
        if bad:
            raise ValueError(f"recipients {bad!r} are not e-mail addresses")
        return [a.strip() for a in v]

    @model_validator(mode="after")
    def _auth_ok(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (give both or neither)")
        if self.username and self.security == "none" and not self.allow_insecure_auth:
            raise ValueError(
                "a password over an unencrypted SMTP connection is refused; use "
                "security 'starttls' or 'ssl' (or allow_insecure_auth for a local test server)"
            )
        return self


class WebhookSinkConfig(SinkConfig):
    """JSON POST to ``url``, signed with HMAC-SHA256 when ``secret`` is set.

    The URL path and query are masked in repr (chat webhooks put tokens there).
    """

    kind: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr | None = Field(None, description="Shared secret for the signature.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra headers (e.g. Authorization), masked."
    )
    use_env_proxy: bool = Field(True, description="Honour http(s)_proxy/no_proxy variables.")
    ca_file: Path | None = None
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url_ok(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook url must be http(s)://host/...: got {_redact_url(v)!r}")
        if parts.username or parts.password:
            raise ValueError("webhook url must not hold user:password; use headers instead")
        return v

    @field_validator("headers")
    @classmethod
    def _headers_ok(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        reserved = {h.lower() for h in (SIGNATURE_HEADER, TIMESTAMP_HEADER, "content-type")}
        for name, value in v.items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name) or name.lower() in reserved:
                raise ValueError(f"header {name!r} is not allowed")
            if re.search(r"[\x00-\x1f\x7f]", value.get_secret_value()):
                raise ValueError(f"header {name!r}: control characters are not allowed")
        return v

    def __repr_args__(self) -> Any:
        for k, v in super().__repr_args__():
            yield (k, _redact_url(v) if k == "url" else v)


class LogSinkConfig(SinkConfig):
    """Python logging plus an in-app list of recent notifications and an optional file."""

    kind: Literal["log"] = "log"
    logger: str = "stream0d_nb.alerts.notifications"
    keep: int = Field(1000, ge=1, le=1_000_000, description="Recent notifications in memory.")
    path: Path | None = Field(None, description="Append each notification as a JSON line.")


def _redact_url(url: str) -> str:
    """``https://host:port/…`` (path and query hidden)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def validation_message(exc: pydantic.ValidationError, what: str) -> str:
    """One readable line per pydantic error: ``field: message``."""
    lines = [f"{what}:"]
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(config)"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- interface


class Sink(ABC):
    """A destination for notifications. ``send`` delivers one or raises ``SinkError``.

    Subclasses set ``kind`` and ``config_model`` and are registered in ``SINK_KINDS``.
    ``send`` must honour ``timeout`` for every network operation and be thread-safe.
    """

    kind: ClassVar[str]
    config_model: ClassVar[type[SinkConfig]]

    def __init__(self, config: SinkConfig) -> None:
        if not isinstance(config, self.config_model):
            raise TypeError(f"{type(self).__name__} needs a {self.config_model.__name__}")
        self.config = config

    @property
    def name(self) -> str:
        """The sink's unique name (routes refer to it)."""
        return self.config.name

    @property
    def timeout(self) -> float:
        """Seconds allowed per network operation."""
        return self.config.timeout

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | SinkConfig) -> Self:
        """Build from a dict (validated) or a ready config; raises ``ValidationError``."""
        if isinstance(config, SinkConfig):
            return cls(config)
        data = dict(config)
        data.setdefault("kind", cls.kind)
        try:
            model = cls.config_model.model_validate(data)
        except pydantic.ValidationError as exc:
            what = f"{cls.kind} sink {data.get('name', '?')!r} is not valid"
            raise ValidationError(validation_message(exc, what)) from None
        return cls(model)

    @abstractmethod
    def send(self, notification: Notification) -> None:
        """Deliver ``notification`` once, or raise ``SinkError`` naming the reason."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


# ----------------------------------------------------------------------------- email


class EmailSink(Sink):
    """Plain-text e-mail over SMTP: subject ``[SEVERITY] dataset: rule state``."""

    kind = "email"
    config_model = EmailSinkConfig
    config: EmailSinkConfig

    def message(self, notification: Notification) -> EmailMessage:
        """The e-mail that ``send`` would deliver (headers and body)."""
        cfg = self.config
        msg = EmailMessage()
        msg["Subject"] = cfg.subject_prefix + notification.summary()
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(cfg.to)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain=cfg.sender.rsplit("@", 1)[1])
        msg[KEY_HEADER] = notification.key
        msg[SEVERITY_HEADER] = notification.severity
        msg.set_content(notification.body_text())
        return msg

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(
            cafile=str(self.config.ca_file) if self.config.ca_file else None
        )
        if not self.config.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def send(self, notification: Notification) -> None:
        """Connect, optionally STARTTLS and log in, send one message, quit."""
        cfg = self.config
        where = f"SMTP {cfg.host}:{cfg.port}"
        msg = self.message(notification)
        try:
            smtp: smtplib.SMTP
            if cfg.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout, context=self._tls_context()
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            with smtp:
                if cfg.security == "starttls":
                    smtp.starttls(context=self._tls_context())
                if cfg.username is not None and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise SinkError(
                self.name, f"{where} refused the login: {_smtp_reply(exc)}", retryable=False
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            reasons = "; ".join(f"{a}: {_smtp_reply(r)}" for a, r in exc.recipients.items())
            raise SinkError(
                self.name, f"{where} refused every recipient ({reasons})", retryable=False
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise SinkError(self.name, f"{where}: {exc}", retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise SinkError(
                self.name, f"{where} said {_smtp_reply(exc)}", retryable=not permanent
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SinkError(self.name, f"{where}: {_os_reason(exc)}") from None
        if refused:
            reasons = "; ".join(f"{a}: {_smtp_reply(r)}" for a, r in refused.items())
            raise SinkError(
                self.name, f"{where} delivered to some recipients but refused {reasons}",
                retryable=False,
            )  # fmt: skip


def _smtp_reply(exc: Any) -> str:
    """``550 mailbox unavailable`` from an SMTP exception or a (code, message) tuple."""
    if isinstance(exc, tuple):
        code, text = exc[0], exc[1]
    else:
        code, text = exc.smtp_code, exc.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def _os_reason(exc: BaseException) -> str:
    """A short reason for a network error (timeout, refused, TLS...)."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"server disconnected ({exc})"
    return f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- webhook


def sign_webhook(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``timestamp.body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_webhook_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise ``WebhookSignatureError`` if it must be rejected.

    Receivers: take the raw request body (bytes, before any JSON parsing), the
    ``X-Stream0d-Timestamp`` header (Unix seconds) and ``X-Stream0d-Signature`` header
    (``sha256=<hex>``); compute HMAC-SHA256 with the shared secret over
    ``timestamp + "." + body``; compare in constant time; refuse timestamps more than
    ``tolerance`` seconds from now (replays). De-duplicate on ``X-Stream0d-Key``.
    Without this package (any language), the same in Python's standard library::

        ts = headers["X-Stream0d-Timestamp"]
        mac = hmac.new(secret.encode(), ts.encode() + b"." + raw_body, hashlib.sha256)
        ok = hmac.compare_digest("sha256=" + mac.hexdigest(), headers["X-Stream0d-Signature"])
        ok = ok and abs(time.time() - int(ts)) <= 300
    """
    if not re.fullmatch(r"[0-9]{1,12}", timestamp or ""):
        raise WebhookSignatureError(f"timestamp {timestamp!r} is not Unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise WebhookSignatureError(
            f"timestamp {timestamp} is {current - int(timestamp):+.0f} s from now "
            f"(more than {tolerance:g} s: a replay or a wrong clock)"
        )
    expected = sign_webhook(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), (signature or "").encode()):
        raise WebhookSignatureError("signature does not match the body and timestamp")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are errors: a POST must not silently turn into a GET elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSink(Sink):
    """POST the notification as JSON; signed, with a timestamp, a key and a timeout."""

    kind = "webhook"
    config_model = WebhookSinkConfig
    config: WebhookSinkConfig

    def __init__(self, config: SinkConfig, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self._clock = clock
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if not self.config.use_env_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        if self.config.url.startswith("https:"):
            ctx = ssl.create_default_context(
                cafile=str(self.config.ca_file) if self.config.ca_file else None
            )
            if not self.config.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, notification: Notification) -> urllib.request.Request:
        """The HTTP request ``send`` would make (body, signature and headers)."""
        body = json.dumps(notification.as_json(), ensure_ascii=False, sort_keys=True).encode()
        timestamp = str(int(self._clock()))
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers |= {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"stream0d_nb/{__version__}",
            TIMESTAMP_HEADER: timestamp,
            KEY_HEADER: notification.key,  # ASCII: its parts are percent-encoded
            SEVERITY_HEADER: notification.severity,
        }
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign_webhook(
                self.config.secret.get_secret_value(), timestamp, body
            )
        return urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")

    def send(self, notification: Notification) -> None:
        """POST once; 2xx is success, 408/429/5xx retryable, other statuses permanent."""
        where = _redact_url(self.config.url)
        try:
            with self._opener.open(self.request(notification), timeout=self.timeout) as resp:
                resp.read(65536)
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read(200).decode("utf-8", "replace").strip()
            status = exc.code
            retryable = status in (408, 425, 429) or status >= 500
            if 300 <= status < 400:
                reason = f"{where} answered a redirect ({status}); use the final URL"
                retryable = False
            else:
                reason = f"{where} answered HTTP {status} {exc.reason}"
                if detail:
                    reason += f": {detail}"
            raise SinkError(self.name, reason, retryable=retryable) from None
        except urllib.error.URLError as exc:
            inner = exc.reason if isinstance(exc.reason, BaseException) else None
            why = _os_reason(inner) if inner else str(exc.reason)
            raise SinkError(self.name, f"{where}: {why}") from None
        except OSError as exc:  # timeouts while reading the answer
            raise SinkError(self.name, f"{where}: {_os_reason(exc)}") from None
        except http.client.HTTPException as exc:  # not HTTP at all, cut short...
            why = f"bad HTTP answer ({type(exc).__name__}: {exc})"
            raise SinkError(self.name, f"{where}: {why}") from None


# ----------------------------------------------------------------------------- log / in-app

LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "major": logging.ERROR,
    "minor": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
}


class LogSink(Sink):
    """Logs each notification and keeps the recent ones for the GUI (memory, JSON lines).

    Firing notifications log at the severity's level, others at INFO. The file (if any)
    is appended first, so a failed write raises ``SinkError`` and records nothing.
    """

    kind = "log"
    config_model = LogSinkConfig
    config: LogSinkConfig

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self._recent: deque[Notification] = deque(maxlen=self.config.keep)
        self._lock = threading.Lock()
        self._logger = logging.getLogger(self.config.logger)

    def send(self, notification: Notification) -> None:
        """Append to the file, remember in memory, then log one line."""
        with self._lock:
            if self.config.path is not None:
                line = json.dumps(notification.as_json(), ensure_ascii=False, sort_keys=True)
                try:
                    with open(self.config.path, "a", encoding="utf-8") as fh:
                        fh.write(line + "\n")
                except OSError as exc:
                    raise SinkError(
                        self.name, f"cannot append to {self.config.path}: {exc.strerror or exc}"
                    ) from None
            self._recent.append(notification)
        level = LEVELS[notification.severity] if notification.state == "firing" else logging.INFO
        self._logger.log(
            level,
            "%s [key %s]",
            notification.summary(),
            notification.key,
            extra={"notification": notification.as_json()},
        )

    def recent(self, limit: int | None = None) -> list[Notification]:
        """The latest notifications kept in memory, oldest first."""
        with self._lock:
            items = list(self._recent)
        return items[-limit:] if limit else items

    def clear(self) -> None:
        """Forget the in-memory notifications (the file is left alone)."""
        with self._lock:
            self._recent.clear()


def read_notifications(path: str | Path, limit: int | None = None) -> list[Notification]:
    """Notifications from a log sink's JSON-lines file, oldest first (the last ``limit``).

    Lines that do not parse (a crash mid-write) are skipped with a warning.
    """
    out: deque[Notification] = deque(maxlen=limit or None)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Notification.from_json(json.loads(line)))
            except (ValueError, TypeError) as exc:
                log.warning("%s line %d: skipped, not a notification (%s)", path, lineno, exc)
    return list(out)


# ----------------------------------------------------------------------------- registry

SINK_KINDS: dict[str, type[Sink]] = {
    "email": EmailSink,
    "webhook": WebhookSink,
    "log": LogSink,
}


def sink_from_config(config: Mapping[str, Any] | SinkConfig) -> Sink:
    """Build a sink of any registered kind from a dict with ``kind`` (or a ready config)."""
    kind = config.kind if isinstance(config, SinkConfig) else config.get("kind")
    if kind not in SINK_KINDS:
        known = ", ".join(sorted(SINK_KINDS))
        name = config.name if isinstance(config, SinkConfig) else config.get("name", "?")
        raise ValidationError(f"sink {name!r}: unknown kind {kind!r} (known: {known})")
    return SINK_KINDS[kind].from_config(config)
