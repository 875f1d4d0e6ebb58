"""Notification sinks: one reusable contract (``SinkContract``) run against every kind.

E-mail runs against a real aiosmtpd server and webhooks against a real HTTP server, both
on 127.0.0.1 with free ports (tests/alert_servers.py); then kind-specific tests.
A new sink kind passes ``SinkContract`` by providing ``sink``, ``broken_sink`` and
``delivered`` fixtures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from stream0d_nb import __version__
from stream0d_nb.alerts.sinks import (
    SINK_KINDS,
    EmailSink,
    LogSink,
    Notification,
    Sink,
    SinkError,
    WebhookSignatureError,
    WebhookSink,
    read_notifications,
    sign_webhook,
    sink_from_config,
    verify_webhook_signature,
)
from stream0d_nb.errors import Stream0dError, ValidationError
from tests.alert_servers import (
    T0,
    MailServer,
    WebhookServer,
    mail_server,
    make_notification,
    make_tls_files,
    webhook_server,
)
from tests.servers import free_port


@dataclass
class Delivered:
    """What a destination got, reduced to what the contract checks."""

    key: str
    severity: str
    text: str  # everything a reader sees (subject and body, JSON body, log line)


class SinkContract:
    """Behaviour every sink must have. Subclasses provide the three fixtures below.

    ``secrets`` lists secret values present in the ``sink`` fixture's config.
    """

    secrets: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    def sink(self) -> Sink:
        """A working sink whose deliveries ``delivered`` can see."""
        raise NotImplementedError

    @pytest.fixture
    def broken_sink(self) -> Sink:
        """A sink of the same kind whose destination fails."""
        raise NotImplementedError

    @pytest.fixture
    def delivered(self) -> Callable[[], list[Delivered]]:
        """What reached the working sink's destination so far, in order."""
        raise NotImplementedError

    def test_is_a_registered_sink(self, sink: Sink) -> None:
        assert isinstance(sink, Sink)
        assert SINK_KINDS[sink.kind] is type(sink)
        assert sink.config.kind == sink.kind
        assert sink.name == sink.config.name

    def test_send_delivers_exactly_one_message(
        self, sink: Sink, delivered: Callable[[], list[Delivered]]
    ) -> None:
        n = make_notification()
        assert sink.send(n) is None
        got = delivered()
        assert len(got) == 1
        assert got[0].key == n.key == "line-1/temp_high//2024-03-01T08:00:00Z/firing"
        assert got[0].severity == "critical"

    def test_each_send_is_one_message_in_order(
        self, sink: Sink, delivered: Callable[[], list[Delivered]]
    ) -> None:
        firing = make_notification()
        resolved = make_notification(
            state="resolved", severity="minor", episode_end=T0.replace(hour=9)
        )
        sink.send(firing)
        sink.send(resolved)
        got = delivered()
        assert [(d.key, d.severity) for d in got] == [
            (firing.key, "critical"),
            (resolved.key, "minor"),
        ]
        assert firing.key != resolved.key

    def test_rendering_names_dataset_rule_and_state(
        self, sink: Sink, delivered: Callable[[], list[Delivered]]
    ) -> None:
        sink.send(make_notification(dataset="oven-2", rule="no_data", state="nodata"))
        (got,) = delivered()
        for text in ("oven-2", "no_data", "nodata", "[CRITICAL] oven-2: no_data nodata"):
            assert text in got.text

    def test_unicode_arrives_intact(
        self, sink: Sink, delivered: Callable[[], list[Delivered]]
    ) -> None:
        sink.send(make_notification(rule="überhitzung", series="zone-Ø1", description="80 °C"))
        (got,) = delivered()
        assert "überhitzung" in got.text
        assert "zone-Ø1" in got.text

    def test_failure_raises_sink_error_with_reason(
        self, broken_sink: Sink, delivered: Callable[[], list[Delivered]]
    ) -> None:
        with pytest.raises(SinkError) as info:
            broken_sink.send(make_notification())
        err = info.value
        assert isinstance(err, Stream0dError) and isinstance(err, RuntimeError)
        assert err.sink == broken_sink.name
        assert len(err.reason) > 5
        assert str(err) == f"sink {broken_sink.name!r}: {err.reason}"
        assert delivered() == []

    def test_config_repr_hides_secrets(self, sink: Sink) -> None:
        shown = [repr(sink), repr(sink.config), str(sink.config), sink.config.model_dump_json()]
        for secret in self.secrets:
            for text in shown:
                assert secret not in text
        dumped = json.dumps(sink.config.dump_with_secrets())
        for secret in self.secrets:
            assert secret in dumped

    def test_from_config_round_trip(self, sink: Sink) -> None:
        data = sink.config.dump_with_secrets()
        rebuilt = sink_from_config(json.loads(json.dumps(data)))
        assert type(rebuilt) is type(sink)
        assert rebuilt.config == sink.config
        assert type(sink).from_config(data).config == sink.config

    def test_from_config_refuses_unknown_settings(self, sink: Sink) -> None:
        data = sink.config.dump_with_secrets() | {"bogus_option": 1}
        with pytest.raises(ValidationError, match="bogus_option"):
            sink_from_config(data)
        with pytest.raises(ValidationError, match="unknown kind 'pager'"):
            sink_from_config(data | {"kind": "pager"})


# ----------------------------------------------------------------------------- email

MAIL_USER, MAIL_PASSWORD = "alerts", "pw-3f9a-not-shown"


def email_config(server: MailServer, **overrides: object) -> dict[str, object]:
    """A config for ``server`` (no TLS: a local test server)."""
    return {
        "kind": "email",
        "name": "ops-mail",
        "host": server.host,
        "port": server.port,
        "security": "none",
        "from": "stream0d@plant.example.com",
        "to": ["ops@plant.example.com", "lead@plant.example.com"],
        "timeout": 5,
    } | overrides


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
class TestEmailSink(SinkContract):
    secrets = (MAIL_PASSWORD,)

    @pytest.fixture
    def server(self) -> Iterator[MailServer]:
        with mail_server(users={MAIL_USER: MAIL_PASSWORD}) as srv:
            yield srv

    @pytest.fixture
    def sink(self, server: MailServer) -> Sink:
        return sink_from_config(
            email_config(
                server, username=MAIL_USER, password=MAIL_PASSWORD, allow_insecure_auth=True
            )
        )

    @pytest.fixture
    def broken_sink(self, server: MailServer) -> Sink:
        return EmailSink.from_config(email_config(server) | {"port": free_port()})

    @pytest.fixture
    def delivered(self, server: MailServer) -> Callable[[], list[Delivered]]:
        def get() -> list[Delivered]:
            return [
                Delivered(
                    m.message["X-Stream0d-Key"],
                    m.message["X-Stream0d-Severity"],
                    f"{m.message['Subject']}\n{m.body}",
                )
                for m in server.received
            ]

        return get

    def test_message_subject_from_to_and_body(self, sink: Sink, server: MailServer) -> None:
        n = make_notification()
        sink.send(n)
        (mail,) = server.received
        assert mail.mail_from == "stream0d@plant.example.com"
        assert mail.rcpt_tos == ["ops@plant.example.com", "lead@plant.example.com"]
        msg = mail.message
        assert msg["Subject"] == "[CRITICAL] line-1: temp_high firing"
        assert msg["From"] == "stream0d@plant.example.com"
        assert msg["To"] == "ops@plant.example.com, lead@plant.example.com"
        assert msg["X-Stream0d-Key"] == n.key
        assert msg.get_content_type() == "text/plain"
        assert mail.body == n.body_text()
        assert mail.body.splitlines()[:12] == [
            "[CRITICAL] line-1: temp_high firing",
            "",
            "Dataset:   line-1",
            "Rule:      temp_high",
            "Series:    -",
            "Severity:  critical",
            "State:     firing",
            "At:        2024-03-01T08:05:00Z",
            "Value:     87.5",
            "Episode:   2024-03-01T08:00:00Z -> open",
            "Labels:    area=press, team=ops",
            "",
        ]
        assert "Runbook:\nhttps://wiki.example.com/runbooks/temp_high\n" in mail.body

    def test_subject_prefix_and_series(self, server: MailServer) -> None:
        sink = sink_from_config(
            email_config(
                server,
                username=MAIL_USER,
                password=MAIL_PASSWORD,
                allow_insecure_auth=True,
                subject_prefix="[plant-a] ",
            )
        )
        sink.send(make_notification(series="zone_1", severity="warning", state="resolved"))
        (mail,) = server.received
        assert mail.message["Subject"] == "[plant-a] [WARNING] line-1: temp_high (zone_1) resolved"

    def test_wrong_password_is_not_retryable(self, server: MailServer) -> None:
        sink = sink_from_config(
            email_config(server, username=MAIL_USER, password="wrong", allow_insecure_auth=True)
        )
        with pytest.raises(SinkError, match="refused the login: 535") as info:
            sink.send(make_notification())
        assert info.value.retryable is False
        assert server.received == []

    def test_login_required_by_server(self, server: MailServer) -> None:
        sink = sink_from_config(email_config(server))
        with pytest.raises(SinkError, match="530") as info:
            sink.send(make_notification())
        assert info.value.retryable is False

    def test_password_over_plain_smtp_is_refused_by_config(self) -> None:
        with pytest.raises(ValidationError, match="unencrypted SMTP connection is refused"):
            sink_from_config(
                {
                    "kind": "email",
                    "name": "m",
                    "host": "smtp.example.com",
                    "security": "none",
                    "username": "u",
                    "password": "p",
                    "from": "a@example.com",
                    "to": ["b@example.com"],
                }
            )
        with pytest.raises(ValidationError, match="username and password go together"):
            sink_from_config(
                {
                    "kind": "email",
                    "name": "m",
                    "host": "h",
                    "username": "u",
                    "from": "a@example.com",
                    "to": ["b@example.com"],
                }
            )

    def test_config_errors_name_each_field(self) -> None:
        with pytest.raises(ValidationError) as info:
            sink_from_config({"kind": "email", "name": "Ops Mail", "host": "h", "from": "x"})
        text = str(info.value)
        assert text.splitlines()[0] == "email sink 'Ops Mail' is not valid:"
        assert "name: Value error, sink name 'Ops Mail' must be a lowercase slug" in text
        assert "from: Value error, from address 'x' is not an e-mail address" in text
        assert "to: Field required" in text

    def test_every_recipient_refused(self) -> None:
        with mail_server() as server:
            server.refuse("ops@plant.example.com", "lead@plant.example.com")
            with pytest.raises(SinkError, match="refused every recipient") as info:
                sink_from_config(email_config(server)).send(make_notification())
        assert info.value.retryable is False
        assert "ops@plant.example.com: 550 5.1.1 no such user here" in info.value.reason

    def test_some_recipients_refused(self) -> None:
        with mail_server() as server:
            server.refuse("lead@plant.example.com")
            with pytest.raises(SinkError, match="delivered to some recipients") as info:
                sink_from_config(email_config(server)).send(make_notification())
            assert [m.rcpt_tos for m in server.received] == [["ops@plant.example.com"]]
        assert info.value.retryable is False

    def test_temporary_failure_is_retryable(self) -> None:
        with mail_server() as server:
            server.fail_data("451 4.3.0 mailbox busy, try later")
            with pytest.raises(SinkError, match=r"451 4\.3\.0 mailbox busy") as info:
                sink_from_config(email_config(server)).send(make_notification())
            assert info.value.retryable is True
            server.fail_data(None)
            sink_from_config(email_config(server)).send(make_notification())
            assert len(server.received) == 1

    @pytest.mark.parametrize("security", ["starttls", "ssl"])
    def test_tls_with_a_trusted_certificate(self, tmp_path: Path, security: str) -> None:
        tls = make_tls_files(tmp_path)
        if tls is None:
            pytest.skip("openssl not found")
        ctx = tls.server_context()
        kwargs = {"starttls": ctx} if security == "starttls" else {"implicit_tls": ctx}
        with mail_server(users={MAIL_USER: MAIL_PASSWORD}, **kwargs) as server:  # type: ignore[arg-type]
            cfg = email_config(
                server, security=security, username=MAIL_USER, password=MAIL_PASSWORD
            )
            sink_from_config(cfg | {"ca_file": str(tls.cert)}).send(make_notification())
            assert len(server.received) == 1
            with pytest.raises(SinkError, match=r"certificate verify failed|TLS error"):
                sink_from_config(cfg).send(make_notification())  # not trusted by default
            assert len(server.received) == 1

    def test_plain_client_against_starttls_only_server(self, tmp_path: Path) -> None:
        tls = make_tls_files(tmp_path)
        if tls is None:
            pytest.skip("openssl not found")
        with mail_server(starttls=tls.server_context()) as server:
            with pytest.raises(SinkError, match="530"):
                sink_from_config(email_config(server)).send(make_notification())
            assert server.received == []


# ----------------------------------------------------------------------------- webhook

HOOK_SECRET, HOOK_TOKEN = "whsec-9c1e-not-shown", "Bearer tok-77aa-not-shown"


def webhook_config(server: WebhookServer, **overrides: object) -> dict[str, object]:
    """A config posting to ``server`` with its secret."""
    return {
        "kind": "webhook",
        "name": "ops-hook",
        "url": server.url,
        "secret": server.secret,
        "headers": {"Authorization": HOOK_TOKEN},
        "timeout": 5,
        "use_env_proxy": False,
    } | overrides


class TestWebhookSink(SinkContract):
    secrets = (HOOK_SECRET, HOOK_TOKEN)

    @pytest.fixture
    def server(self) -> Iterator[WebhookServer]:
        with webhook_server(secret=HOOK_SECRET) as srv:
            yield srv

    @pytest.fixture
    def sink(self, server: WebhookServer) -> Sink:
        return sink_from_config(webhook_config(server))

    @pytest.fixture
    def broken_sink(self, server: WebhookServer) -> Sink:
        server.fail_next(500)
        return sink_from_config(webhook_config(server))

    @pytest.fixture
    def delivered(self, server: WebhookServer) -> Callable[[], list[Delivered]]:
        def get() -> list[Delivered]:
            out = []
            for r in server.received:
                data = json.loads(r.body)
                out.append(Delivered(data["key"], data["severity"], r.body.decode()))
            return out

        return get

    def test_body_headers_and_signature(self, sink: Sink, server: WebhookServer) -> None:
        n = make_notification(value=float("nan"), series="a/b")
        before = int(time.time())
        sink.send(n)
        (req,) = server.requests
        assert req.status == 200 and req.signature_error is None
        assert req.path == "/hook"
        assert json.loads(req.body) == n.as_json()
        assert json.loads(req.body)["value"] is None  # NaN is not JSON
        assert req.headers["Content-Type"] == "application/json; charset=utf-8"
        assert req.headers["Authorization"] == HOOK_TOKEN
        assert req.headers["X-Stream0d-Key"] == "line-1/temp_high/a%2Fb/2024-03-01T08:00:00Z/firing"
        assert req.headers["X-Stream0d-Severity"] == "critical"
        ts = req.headers["X-Stream0d-Timestamp"]
        assert before <= int(ts) <= int(time.time())
        # Independent check of the documented scheme: HMAC-SHA256(secret, ts + "." + body).
        expected = hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + req.body, hashlib.sha256)
        assert req.headers["X-Stream0d-Signature"] == "sha256=" + expected.hexdigest()

    def test_without_secret_there_is_no_signature(self) -> None:
        with webhook_server(secret=None) as server:
            sink_from_config(webhook_config(server, secret=None, headers={})).send(
                make_notification()
            )
            (req,) = server.requests
        assert "X-Stream0d-Signature" not in req.headers
        assert "X-Stream0d-Timestamp" in req.headers

    def test_wrong_secret_is_refused_by_receiver(self, server: WebhookServer) -> None:
        sink = sink_from_config(webhook_config(server, secret="other"))
        with pytest.raises(SinkError, match="HTTP 401") as info:
            sink.send(make_notification())
        assert info.value.retryable is False
        assert server.requests[0].signature_error == (
            "signature does not match the body and timestamp"
        )

    @pytest.mark.parametrize(
        ("status", "retryable"),
        [(500, True), (503, True), (429, True), (408, True), (404, False), (400, False)],
    )
    def test_status_codes(self, server: WebhookServer, status: int, retryable: bool) -> None:
        server.fail_next(status)
        with pytest.raises(SinkError, match=f"answered HTTP {status}") as info:
            sink_from_config(webhook_config(server)).send(make_notification())
        assert info.value.retryable is retryable
        assert "receiver says no" in info.value.reason

    def test_redirect_is_not_followed(self, server: WebhookServer) -> None:
        server.fail_next(307)
        with pytest.raises(SinkError, match=r"answered a redirect \(307\)") as info:
            sink_from_config(webhook_config(server)).send(make_notification())
        assert info.value.retryable is False
        assert len(server.requests) == 1

    def test_timeout(self, server: WebhookServer) -> None:
        server.delay = 5.0
        sink = sink_from_config(webhook_config(server, timeout=0.3))
        start = time.monotonic()
        with pytest.raises(SinkError, match="timed out") as info:
            sink.send(make_notification())
        assert time.monotonic() - start < 3.0
        assert info.value.retryable is True

    def test_connection_refused(self) -> None:
        url = f"http://127.0.0.1:{free_port()}/hook"
        sink = sink_from_config({"kind": "webhook", "name": "h", "url": url})
        with pytest.raises(SinkError, match="connection refused"):
            sink.send(make_notification())

    def test_url_path_and_query_are_masked(self) -> None:
        sink = sink_from_config(
            {"kind": "webhook", "name": "chat", "url": "https://chat.example.com/T01/B02/XyZ?t=1"}
        )
        assert "url='https://chat.example.com/…'" in repr(sink)
        assert "XyZ" not in repr(sink)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("ftp://example.com/x", "must be http"),
            ("http://user:pw@example.com/", "must not hold user:password"),
            ("not a url", "must be http"),
        ],
    )
    def test_bad_urls(self, url: str, message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            sink_from_config({"kind": "webhook", "name": "h", "url": url})

    def test_reserved_headers_refused(self) -> None:
        with pytest.raises(ValidationError, match="header 'X-Stream0d-Signature' is not allowed"):
            sink_from_config(
                {
                    "kind": "webhook",
                    "name": "h",
                    "url": "http://127.0.0.1/",
                    "headers": {"X-Stream0d-Signature": "x"},
                }
            )

    def test_header_values_with_control_characters_refused(self) -> None:
        with pytest.raises(ValidationError, match="control characters are not allowed"):
            sink_from_config(
                {
                    "kind": "webhook",
                    "name": "h",
                    "url": "http://127.0.0.1/",
                    "headers": {"Authorization": "Bearer x\r\nX-Evil: 1"},
                }
            )

    def test_an_answer_that_is_not_http(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]

            def answer_garbage() -> None:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"SMTP ready, not HTTP\r\n\r\n")

            thread = threading.Thread(target=answer_garbage)
            thread.start()
            sink = sink_from_config(
                {"kind": "webhook", "name": "h", "url": f"http://127.0.0.1:{port}/", "timeout": 5}
            )
            with pytest.raises(SinkError, match="bad HTTP answer"):
                sink.send(make_notification())
            thread.join(10)

    def test_request_uses_injected_clock(self) -> None:
        sink = WebhookSink.from_config({"name": "h", "url": "http://127.0.0.1/", "secret": "s"})
        sink._clock = lambda: 1_700_000_000.9
        req = sink.request(make_notification())
        assert req.get_header("X-stream0d-timestamp") == "1700000000"
        body = req.data
        assert isinstance(body, bytes)
        assert req.get_header("X-stream0d-signature") == sign_webhook("s", "1700000000", body)


class TestVerifyWebhookSignature:
    body = b'{"key": "k"}'
    ts = "1700000000"

    def sig(self, secret: str = "s", ts: str = ts, body: bytes = body) -> str:
        return (
            "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, "sha256").hexdigest()
        )

    def test_good(self) -> None:
        verify_webhook_signature("s", self.body, self.ts, self.sig(), now=1_700_000_100)
        verify_webhook_signature(b"s", self.body, self.ts, self.sig(), now=1_699_999_800)

    @pytest.mark.parametrize(
        ("body", "ts", "sig", "now", "message"),
        [
            (b'{"key": "K"}', ts, None, 1_700_000_000, "does not match"),
            (body, ts, "sha256=" + "0" * 64, 1_700_000_000, "does not match"),
            (body, ts, "", 1_700_000_000, "does not match"),
            (body, "1700000001", None, 1_700_000_000, "does not match"),  # ts not re-signed
            (body, ts, None, 1_700_000_301, r"is \+301 s from now .*replay"),
            (body, ts, None, 1_699_999_000, "is -1000 s from now"),
            (body, "17e8", None, 1_700_000_000, "not Unix seconds"),
            (body, "", None, 1_700_000_000, "not Unix seconds"),
        ],
    )
    def test_rejected(
        self, body: bytes, ts: str, sig: str | None, now: float, message: str
    ) -> None:
        signature = self.sig() if sig is None else sig
        with pytest.raises(WebhookSignatureError, match=message):
            verify_webhook_signature("s", body, ts, signature, now=now)

    def test_wrong_secret(self) -> None:
        with pytest.raises(WebhookSignatureError):
            verify_webhook_signature("t", self.body, self.ts, self.sig(), now=1_700_000_000)

    def test_is_a_value_error(self) -> None:
        assert issubclass(WebhookSignatureError, ValueError)


# ----------------------------------------------------------------------------- log / in-app


class TestLogSink(SinkContract):
    @pytest.fixture
    def sink(self, tmp_path: Path) -> Sink:
        return sink_from_config(
            {"kind": "log", "name": "in-app", "path": str(tmp_path / "notifications.jsonl")}
        )

    @pytest.fixture
    def broken_sink(self, tmp_path: Path) -> Sink:
        return sink_from_config({"kind": "log", "name": "in-app", "path": str(tmp_path)})

    @pytest.fixture
    def delivered(self, tmp_path: Path) -> Callable[[], list[Delivered]]:
        def get() -> list[Delivered]:
            path = tmp_path / "notifications.jsonl"
            if not path.exists():
                return []
            lines = path.read_text(encoding="utf-8").splitlines()
            return [Delivered(json.loads(x)["key"], json.loads(x)["severity"], x) for x in lines]

        return get

    def test_logs_at_the_severity_level(self, sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="stream0d_nb.alerts.notifications")
        firing = make_notification()
        sink.send(firing)
        sink.send(make_notification(severity="major"))
        sink.send(make_notification(state="resolved", episode_end=T0.replace(hour=9)))
        records = [r for r in caplog.records if r.name == "stream0d_nb.alerts.notifications"]
        assert [(r.levelname, r.getMessage()) for r in records] == [
            ("CRITICAL", f"[CRITICAL] line-1: temp_high firing [key {firing.key}]"),
            ("ERROR", f"[MAJOR] line-1: temp_high firing [key {firing.key}]"),
            (
                "INFO",
                "[CRITICAL] line-1: temp_high resolved "
                "[key line-1/temp_high//2024-03-01T08:00:00Z/resolved]",
            ),
        ]
        assert records[0].notification == firing.as_json()  # type: ignore[attr-defined]

    def test_recent_in_memory_is_bounded(self) -> None:
        sink = LogSink.from_config({"name": "in-app", "keep": 2})
        sent = [make_notification(repeat=i) for i in range(3)]
        for n in sent:
            sink.send(n)
        assert sink.recent() == sent[1:]
        assert sink.recent(1) == sent[2:]
        assert [n.key[-2:] for n in sink.recent()] == ["#1", "#2"]
        sink.clear()
        assert sink.recent() == []

    def test_json_lines_file_reads_back(self, sink: Sink, tmp_path: Path) -> None:
        sent = [
            make_notification(),
            make_notification(series="zone_2", value=None, labels={}),
            make_notification(state="resolved", episode_end=datetime(2024, 3, 1, 9, tzinfo=UTC)),
        ]
        for n in sent:
            sink.send(n)
        path = tmp_path / "notifications.jsonl"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write('{"truncated": \n')  # a crash mid-write
        assert read_notifications(path) == sent
        assert read_notifications(path, limit=2) == sent[1:]

    def test_failed_write_keeps_nothing(self, broken_sink: Sink) -> None:
        assert isinstance(broken_sink, LogSink)
        with pytest.raises(SinkError, match="cannot append to"):
            broken_sink.send(make_notification())
        assert broken_sink.recent() == []


# ----------------------------------------------------------------------------- notification


class TestNotification:
    def test_key_is_stable_and_escaped(self) -> None:
        n = make_notification(series="zone/1 #a", repeat=3)
        assert n.key == "line-1/temp_high/zone%2F1%20%23a/2024-03-01T08:00:00Z/firing#3"
        assert make_notification(series="zone/1 #a", repeat=3).key == n.key

    def test_times_become_utc_and_naive_is_refused(self) -> None:
        from zoneinfo import ZoneInfo

        local = datetime(2024, 3, 1, 9, 0, tzinfo=ZoneInfo("Europe/Madrid"))
        n = make_notification(episode_start=local, at=local)
        assert n.episode_start == T0 and n.episode_start.tzinfo is UTC
        with pytest.raises(ValueError, match="must be timezone-aware"):
            make_notification(at=datetime(2024, 3, 1, 8))

    def test_episode_end_before_start_refused(self) -> None:
        with pytest.raises(ValueError, match="is before episode_start"):
            make_notification(episode_end=datetime(2024, 2, 1, tzinfo=UTC))

    def test_unknown_severity_and_state_refused(self) -> None:
        with pytest.raises(ValueError, match="severity"):
            make_notification(severity="fatal")
        with pytest.raises(ValueError, match="state"):
            make_notification(state="burning")

    def test_summary_is_one_line(self) -> None:
        n = make_notification(rule="temp\r\nBcc: victim@example.com", series="a\nb")
        assert n.summary() == "[CRITICAL] line-1: temp Bcc: victim@example.com (a b) firing"

    def test_json_round_trip(self) -> None:
        n = make_notification(episode_end=datetime(2024, 3, 1, 9, tzinfo=UTC), repeat=1)
        data = json.loads(json.dumps(n.as_json()))
        assert data["summary"] == "[CRITICAL] line-1: temp_high firing"
        assert data["episode_end"] == "2024-03-01T09:00:00Z"
        assert Notification.from_json(data) == n

    def test_body_without_optional_parts(self) -> None:
        n = make_notification(value=None, labels={}, description="", runbook="")
        assert n.body_text() == (
            "[CRITICAL] line-1: temp_high firing\n\n"
            "Dataset:   line-1\nRule:      temp_high\nSeries:    -\nSeverity:  critical\n"
            "State:     firing\nAt:        2024-03-01T08:05:00Z\nValue:     -\n"
            "Episode:   2024-03-01T08:00:00Z -> open\n\n"
            f"Key: line-1/temp_high//2024-03-01T08:00:00Z/firing\n-- stream0d_nb {__version__}\n"
        )
