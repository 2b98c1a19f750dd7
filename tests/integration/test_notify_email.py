"""The e-mail notifier against a real SMTP server on 127.0.0.1: STARTTLS and implicit TLS with a verified
certificate from a throwaway CA, login, a refused certificate, a server that fails, and a password that never
shows. Backoff is a recording sleep: nothing waits."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from robson.adapters.notify import EmailSink, build_notifier
from robson.application.notify import NullNotifier, events_from_monitor_report
from robson.config import describe_settings, load_settings
from robson.errors import ConfigError
from tests.integration.test_notify import Recorder, dispatcher, monitor_report
from tests.smtp_server import SmtpServer, free_port

PASSWORD = "CANARY-smtp-pässword-7d1e"  # not ASCII: sent as AUTH PLAIN in UTF-8 (smtplib's own login is ASCII only)

# aiosmtpd cannot tell that implicit TLS is TLS, so its test server allows AUTH there "without" it, and says so.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SENDER, RECIPIENTS = "robson@example.com", ["trader@example.com", "desk@example.com"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def starttls_server(ca: trustme.CA) -> Iterator[SmtpServer]:
    with SmtpServer(tls="starttls", certificate=ca.issue_cert("127.0.0.1"), users={"robson": PASSWORD}) as server:
        yield server


def sink(server_port: int, *, tls: str = "starttls", ca_file: str | None = None, password: str = PASSWORD,
         username: str | None = "robson") -> EmailSink:
    return EmailSink(host="127.0.0.1", port=server_port, tls=tls, sender=SENDER, recipients=RECIPIENTS,
                     username=username, password=password, ca_file=ca_file)


def closed_event():
    return events_from_monitor_report(monitor_report())[1]


# --- delivered ------------------------------------------------------------------------------------


def test_starttls_sends_one_plain_text_mail_with_the_document_after_a_verified_certificate_and_login(
        starttls_server, ca_file):
    recorder = Recorder()
    event = closed_event()

    arrived = dispatcher(recorder=recorder).deliver(sink(starttls_server.port, ca_file=ca_file), event)

    assert arrived is True and recorder.lines == [] and recorder.sleeps == []
    assert starttls_server.logins == [("robson", PASSWORD)]
    (received,) = starttls_server.messages
    message = received.message
    assert (received.mail_from, received.rcpt_tos) == (SENDER, RECIPIENTS)
    assert message["Subject"] == "CLOSED BTCUSDT BUY op-1c2d3e4f (stop): P&L -8.44 USDT (-1.17 R)"
    assert (message["From"], message["To"]) == (SENDER, "trader@example.com, desk@example.com")
    assert message["Message-ID"] == "<closed.op-1c2d3e4f.1714568400000@robson>"  # the stable id: a retry is a duplicate
    assert message["Date"] == "Wed, 01 May 2024 13:00:00 +0000"
    body = message.get_content()
    assert body.startswith(event.text)
    assert '"realized_pnl": "-8.443009331"' in body and '"id": "closed:op-1c2d3e4f:1714568400000"' in body
    assert message.get_content_type() == "text/plain"


def test_implicit_tls_delivers_too_with_an_ascii_password(ca, ca_file):
    with SmtpServer(tls="tls", certificate=ca.issue_cert("127.0.0.1"), users={"robson": "ascii-pw-1"}) as server:
        arrived = dispatcher(recorder=Recorder()).deliver(
            sink(server.port, tls="tls", ca_file=ca_file, password="ascii-pw-1"), closed_event())

    assert arrived is True and len(server.messages) == 1 and server.logins == [("robson", "ascii-pw-1")]


def test_a_dispatcher_sends_every_event_to_the_mailbox_in_the_background(starttls_server, ca_file):
    notifier = dispatcher(sink(starttls_server.port, ca_file=ca_file), recorder=Recorder())

    notifier.notify(events_from_monitor_report(monitor_report()))
    notifier.close()

    assert [r.message["Subject"].split()[0] for r in starttls_server.messages] == [
        "STOP", "CLOSED", "TRADING", "MONITOR", "ALERT"]


# --- refused, not retried, nothing sent ---------------------------------------------------------------


@pytest.mark.parametrize(("ca_given", "names", "reason"), [
    (False, ["127.0.0.1"], "certificate refused: unable to get local issuer certificate"),  # the system's CAs
    (True, ["mail.example.com"], "certificate refused: IP address mismatch"),  # the right CA, another host
], ids=["unknown-ca", "other-host"])
def test_a_certificate_that_does_not_verify_is_refused_before_the_login_and_not_retried(ca, ca_file, ca_given, names,
                                                                                       reason):
    recorder = Recorder()
    with SmtpServer(tls="starttls", certificate=ca.issue_cert(*names), users={"robson": PASSWORD}) as server:
        arrived = dispatcher(recorder=recorder).deliver(sink(server.port, ca_file=ca_file if ca_given else None),
                                                        closed_event())

    assert arrived is False and recorder.sleeps == []
    (line,) = recorder.lines
    assert line.startswith(f"notify: closed to email smtp://127.0.0.1:{server.port} (starttls) not delivered after "
                           f"1 attempt: {reason}")
    assert server.logins == [] and server.messages == []


def test_a_server_without_starttls_gets_nothing_in_plain_text(ca_file):
    recorder = Recorder()
    with SmtpServer(tls="none") as server:
        arrived = dispatcher(recorder=recorder).deliver(sink(server.port, ca_file=ca_file), closed_event())

    assert arrived is False and recorder.sleeps == [] and server.messages == []
    assert recorder.lines[0].endswith("not delivered after 1 attempt: the server does not offer STARTTLS")


def test_a_refused_login_is_not_retried_and_never_shows_the_password(ca, ca_file):
    recorder = Recorder()
    with SmtpServer(tls="starttls", certificate=ca.issue_cert("127.0.0.1"), users={"robson": "other"}) as server:
        email = sink(server.port, ca_file=ca_file)
        arrived = dispatcher(email, recorder=recorder).deliver(email, closed_event())

    assert arrived is False and recorder.sleeps == [] and server.messages == []
    assert recorder.lines[0].endswith("not delivered after 1 attempt: login refused (SMTP 535)")
    assert server.logins == [("robson", PASSWORD)]  # sent only inside TLS
    shown = " ".join([*recorder.lines, repr(email), str(email), email.name])
    assert PASSWORD not in shown and "CANARY" not in shown


# --- a server that fails -------------------------------------------------------------------------------


def test_a_temporary_refusal_is_retried_with_backoff_then_delivered(starttls_server, ca_file):
    recorder = Recorder()
    starttls_server.script.extend(["451 4.3.0 Try again later", "421 4.7.0 Too busy"])

    arrived = dispatcher(recorder=recorder).deliver(sink(starttls_server.port, ca_file=ca_file), closed_event())

    assert arrived is True and recorder.sleeps == [1.0, 2.0] and recorder.lines == []
    assert len(starttls_server.messages) == 1


def test_a_permanent_refusal_is_given_up_at_once_naming_the_reply(starttls_server, ca_file):
    recorder = Recorder()
    starttls_server.script.append("554 5.7.1 Message rejected as spam")

    arrived = dispatcher(recorder=recorder).deliver(sink(starttls_server.port, ca_file=ca_file), closed_event())

    assert arrived is False and recorder.sleeps == [] and starttls_server.messages == []
    assert recorder.lines[0].endswith("after 1 attempt: SMTP 554: 5.7.1 Message rejected as spam")


def test_a_server_that_is_not_there_is_retried_then_given_up():
    recorder = Recorder()
    port = free_port()  # nothing listens there

    arrived = dispatcher(recorder=recorder).deliver(sink(port), closed_event())

    assert arrived is False and recorder.sleeps == [1.0, 2.0]
    assert recorder.lines == [f"notify: closed to email smtp://127.0.0.1:{port} (starttls) not delivered after "
                              "3 attempts: cannot connect: Connection refused"]


# --- settings --------------------------------------------------------------------------------------


def email_settings(tmp_path: Path, **values: str):
    """Settings e-mailing trader@example.com through 127.0.0.1, changed by values (as ROBSON_NOTIFY__* variables)."""
    return load_settings(env={f"ROBSON_NOTIFY__{k.upper()}": v for k, v in {
        "email_to": "trader@example.com", "email_from": SENDER, "smtp_host": "127.0.0.1", **values}.items()})


@pytest.fixture
def no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


@pytest.mark.parametrize(("values", "problem"), [
    ({"smtp_host": "smtp.example.com", "smtp_tls": "none"},
     "field 'notify.smtp_tls': none sends the password and the messages in clear text, allowed only for a server on "
     "127.0.0.1 (not smtp.example.com)"),
    ({"smtp_host": ""}, "field 'notify.email_to': e-mail needs notify.smtp_host too"),
    ({"email_from": ""}, "field 'notify.email_to': e-mail needs notify.email_from too"),
    ({"email_to": "trader"}, "field 'notify.email_to': must be an e-mail address like trader@example.com"),
    ({"smtp_tls": "ssl"}, "field 'notify.smtp_tls': must be starttls"),
    ({"smtp_host": "smtp.example.com:587"}, "give the port as notify.smtp_port"),
    ({"smtp_port": "70000"}, "field 'notify.smtp_port': must be at most 65,535"),
], ids=["plain-to-a-remote-host", "no-host", "no-sender", "not-an-address", "unknown-tls", "host-with-port",
        "port-too-high"])
def test_bad_email_settings_are_refused_naming_the_field(no_config_file, values, problem):
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        email_settings(no_config_file, **values)


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("tls", 465), ("none", 25)])
def test_plain_smtp_is_allowed_on_this_machine_and_each_mode_has_its_usual_port(no_config_file, tls, port):
    from robson.config import smtp_port

    settings = email_settings(no_config_file, smtp_tls=tls)

    assert smtp_port(settings) == port and settings["notify.email_to"] == ["trader@example.com"]


def test_the_password_comes_from_a_0600_file_and_config_show_says_only_that_it_is_set(no_config_file):
    secret = no_config_file / "smtp.secret"
    secret.write_text(f"SMTP_PASSWORD={PASSWORD}\n")
    os.chmod(secret, 0o600)
    settings = email_settings(no_config_file, smtp_username="robson", smtp_password_file=str(secret))
    lines: list[str] = []

    notifier = build_notifier(settings, env={}, log=lines.append)
    shown = describe_settings(settings, env={})

    (email,) = notifier.sinks
    assert lines == [] and email.secrets == (PASSWORD,)
    assert {r["name"]: r["value"] for r in shown}["notify.smtp_password"] == f"set (file {secret}), redacted"
    assert PASSWORD not in repr(shown) and PASSWORD not in repr(email)


@pytest.mark.parametrize(("mode", "values", "line"), [
    (None, {"smtp_username": "robson"}, "notify.smtp_username is set but no password (set ROBSON_SMTP_PASSWORD or "
                                        "notify.smtp_password_file)"),
    (0o644, {"smtp_username": "robson"}, "is readable by others (mode 0644)"),
    (None, {"smtp_ca_file": "/nowhere/ca.pem"}, "notify.smtp_ca_file /nowhere/ca.pem does not exist"),
], ids=["no-password", "password-file-readable-by-others", "missing-ca-file"])
def test_a_misconfigured_email_is_left_out_with_one_line(no_config_file, mode, values, line):
    if mode is not None:
        secret = no_config_file / "smtp.secret"
        secret.write_text(f"SMTP_PASSWORD={PASSWORD}\n")
        os.chmod(secret, mode)
        values = values | {"smtp_password_file": str(secret)}
    lines: list[str] = []

    notifier = build_notifier(email_settings(no_config_file, **values), env={}, log=lines.append)

    assert isinstance(notifier, NullNotifier)
    assert len(lines) == 1 and lines[0].startswith("notify: e-mail left out: ") and line in lines[0]
    assert PASSWORD not in lines[0]
