"""Deliver notifications to a webhook, Telegram and e-mail without ever holding up or failing trading.

`Dispatcher.notify` only queues; one daemon worker thread sends each notification to each sink
with a per-attempt timeout and retries with doubling backoff (temporary failures only), and
logs a give-up as one stderr line. `close()` waits for the queue at most `drain_seconds`; what
is still unsent then is dropped with one line (the daemon thread dies with the process).
Secrets (the bot token, a webhook URL's path, the SMTP password) never reach a log line: messages are
scrubbed.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from robson.application.notify import EVENT_KINDS, Notification, Notifier, NullNotifier
from robson.config import Settings, redact_url, smtp_password, smtp_port, telegram_token
from robson.errors import ConfigError

Post = Callable[[str, dict[str, Any], float], None]


class DeliveryFailed(Exception):
    """One attempt failed; `temporary` says whether trying again may help. Never leaves this module."""

    def __init__(self, reason: str, *, temporary: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


def log_line(message: str) -> None:
    """Write one line to stderr; a closed stream (a test runner's, after the command) is ignored."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (ValueError, OSError):
        pass


def post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    """POST body as JSON; raise DeliveryFailed (temporary for timeouts, refused connections, 429 and 5XX)."""
    import socket
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a redirect could carry the token away
            return None

    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "robson"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as e:
        e.close()
        raise DeliveryFailed(f"HTTP {e.code}", temporary=e.code == 429 or e.code >= 500) from None
    except (TimeoutError, socket.timeout):
        raise DeliveryFailed(f"no answer within {timeout:g} s", temporary=True) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise DeliveryFailed(f"no answer within {timeout:g} s", temporary=True) from None
        text = getattr(reason, "strerror", None) or type(reason).__name__
        raise DeliveryFailed(f"cannot connect: {text}", temporary=True) from None
    except (OSError, ValueError) as e:  # connection reset mid-answer, a malformed URL: no text that may hold the URL
        raise DeliveryFailed(type(e).__name__, temporary=isinstance(e, OSError)) from None


class Sink(Protocol):
    name: str  # for log lines: never holds a secret

    def send(self, notification: Notification, timeout: float) -> None: ...


class WebhookSink:
    """POST each notification's JSON document to a URL."""

    def __init__(self, url: str, *, post: Post = post_json) -> None:
        self._url = url
        self._post = post
        self.name = f"webhook {redact_url(url)}"
        self.secrets = (url,) if self.name != f"webhook {url}" else ()  # a bare scheme://host holds no secret

    def send(self, notification: Notification, timeout: float) -> None:
        """Deliver one notification; raise DeliveryFailed."""
        self._post(self._url, notification.to_document(), timeout)

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r})"


class TelegramSink:
    """Send each notification as a Telegram message (Bot API sendMessage, plain text)."""

    def __init__(self, token: str, chat_id: str, *, base_url: str = "https://api.telegram.org",
                 post: Post = post_json) -> None:
        self._token = token
        self._chat_id = chat_id
        self._base_url = base_url.rstrip("/")
        self._post = post
        self.name = f"telegram {redact_url(base_url)}"
        self.secrets = (token,)

    def send(self, notification: Notification, timeout: float) -> None:
        """Deliver one notification; raise DeliveryFailed."""
        text = f"{notification.title}\n{notification.text}"[:4096]  # Telegram's message limit
        body = {"chat_id": self._chat_id, "text": text, "disable_web_page_preview": True}
        self._post(f"{self._base_url}/bot{self._token}/sendMessage", body, timeout)

    def __repr__(self) -> str:
        return f"TelegramSink({self.name!r}, token=<redacted>)"


class EmailSink:
    """Send each notification as a plain-text e-mail over SMTP.

    tls "starttls" upgrades a plain connection (STARTTLS must be offered), "tls" speaks TLS from the
    first byte; either way the certificate is verified against the system's CAs, or only against
    ca_file (a private CA), and must name host. "none" is plain text, which the configuration allows
    only for a server on this machine. Logs in with username and password when a username is given.
    """

    def __init__(self, *, host: str, port: int, tls: str, sender: str, recipients: Sequence[str],
                 username: str | None = None, password: str | None = None, ca_file: str | None = None) -> None:
        self._host, self._port, self._tls = host, port, tls
        self._sender, self._recipients = sender, tuple(recipients)
        self._username, self._password, self._ca_file = username, password, ca_file
        self.name = f"email smtp://{host}:{port} ({tls})"
        self.secrets = (password,) if password else ()

    def send(self, notification: Notification, timeout: float) -> None:
        """Deliver one notification; raise DeliveryFailed (temporary for timeouts, lost connections and 4XX)."""
        import smtplib
        import socket
        import ssl

        client: smtplib.SMTP | None = None
        try:
            if self._tls == "tls":
                client = smtplib.SMTP_SSL(self._host, self._port, timeout=timeout, context=self._context(),
                                          local_hostname=socket.gethostname())
            else:
                client = smtplib.SMTP(self._host, self._port, timeout=timeout, local_hostname=socket.gethostname())
            if self._tls == "starttls":
                client.starttls(context=self._context())
            if self._username:
                _login(client, self._username, self._password or "")
            client.send_message(self._message(notification), self._sender, list(self._recipients))
            client.quit()
        except ssl.SSLCertVerificationError as e:
            raise DeliveryFailed(f"certificate refused: {e.verify_message or 'not trusted'}", temporary=False) from None
        except ssl.SSLError as e:
            raise DeliveryFailed(f"TLS failed: {e.reason or type(e).__name__}", temporary=False) from None
        except smtplib.SMTPNotSupportedError:
            what = "STARTTLS" if self._tls == "starttls" and not _tls_on(client) else "login (AUTH)"
            raise DeliveryFailed(f"the server does not offer {what}", temporary=False) from None
        except smtplib.SMTPAuthenticationError as e:  # the server's text is not shown: it may echo the login
            raise DeliveryFailed(f"login refused (SMTP {e.smtp_code})", temporary=False) from None
        except smtplib.SMTPRecipientsRefused as e:
            codes = sorted({code for code, _ in e.recipients.values()})
            raise DeliveryFailed(f"every recipient refused (SMTP {', '.join(map(str, codes))})",
                                 temporary=all(400 <= code < 500 for code in codes)) from None
        except smtplib.SMTPResponseException as e:  # sender or message refused, service not available, ...
            raise DeliveryFailed(f"SMTP {e.smtp_code}: {_server_text(e.smtp_error)}",
                                 temporary=400 <= e.smtp_code < 500) from None
        except smtplib.SMTPServerDisconnected:
            raise DeliveryFailed("the server closed the connection", temporary=True) from None
        except (TimeoutError, socket.timeout):
            raise DeliveryFailed(f"no answer within {timeout:g} s", temporary=True) from None
        except smtplib.SMTPException as e:
            raise DeliveryFailed(f"SMTP failed ({type(e).__name__})", temporary=False) from None
        except OSError as e:  # refused, unreachable, reset: no text that may hold more than the reason
            raise DeliveryFailed(f"cannot connect: {e.strerror or type(e).__name__}", temporary=True) from None
        finally:
            if client is not None:
                client.close()

    def _context(self):
        import ssl

        return ssl.create_default_context(cafile=self._ca_file)  # verifies the chain and the host name

    def _message(self, notification: Notification):
        from email.message import EmailMessage
        from email.utils import format_datetime

        message = EmailMessage()
        message["Subject"] = " ".join(notification.title.split())[:200]  # one line: a header holds no line break
        message["From"] = self._sender
        message["To"] = ", ".join(self._recipients)
        message["Date"] = format_datetime(notification.at)
        message["Message-ID"] = f"<{notification.key.replace(':', '.')}@robson>"  # stable: a retry is a duplicate
        document = json.dumps(notification.to_document(), ensure_ascii=False, indent=2)
        message.set_content(f"{notification.text}\n\n{document}\n")
        return message

    def __repr__(self) -> str:
        return f"EmailSink({self.name!r}, password=<redacted>)"


def _login(client: Any, username: str, password: str) -> None:
    """Log in: smtplib's own way for ASCII credentials, else AUTH PLAIN in UTF-8 (RFC 4616; smtplib sends ASCII only)."""
    import base64
    import smtplib

    if (username + password).isascii():
        client.login(username, password)
        return
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = client.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _tls_on(client: Any) -> bool:
    import ssl

    return client is not None and isinstance(getattr(client, "sock", None), ssl.SSLSocket)


def _server_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "…"


@dataclass(frozen=True, slots=True)
class _Job:
    sink: Sink
    notification: Notification


_STOP = object()


class Dispatcher:
    """Queue notifications and send them from one background thread with timeout, retries and backoff."""

    enabled = True

    def __init__(self, sinks: Sequence[Sink], *, kinds: Iterable[str] = EVENT_KINDS, timeout_seconds: float = 5.0,
                 retries: int = 2, backoff_seconds: float = 1.0, drain_seconds: float = 10.0,
                 sleep: Callable[[float], object] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] = log_line) -> None:
        self.sinks = tuple(sinks)
        self.kinds = frozenset(kinds)
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.drain_seconds = drain_seconds
        self._sleep, self._monotonic, self._log = sleep, monotonic, log
        self._queue: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._secrets = tuple(s for sink in self.sinks for s in getattr(sink, "secrets", ()) if s)

    def notify(self, notifications: Iterable[Notification]) -> None:
        """Queue the notifications whose kind is selected; return at once, never raise."""
        jobs = [_Job(sink, n) for n in notifications if n is not None and n.kind.value in self.kinds
                for sink in self.sinks]
        if not jobs:
            return
        with self._lock:
            if self._closed:
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="robson-notify", daemon=True)
                self._worker.start()
            for job in jobs:
                self._queue.put(job)

    def close(self) -> None:
        """Wait at most drain_seconds for queued notifications, then drop the rest with one log line."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
            if worker is None:
                return
            self._queue.put(_STOP)
        worker.join(self.drain_seconds)
        if worker.is_alive():
            # Counted from the queue, plus the one being sent now.
            left = sum(1 for job in list(self._queue.queue) if job is not _STOP) + 1
            self._log(f"notify: {left} notification(s) not delivered within {self.drain_seconds:g} s; dropped")

    def deliver(self, sink: Sink, notification: Notification) -> bool:
        """Send one notification to one sink with retries; log a give-up; return whether it arrived."""
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                sink.send(notification, self.timeout_seconds)
                return True
            except DeliveryFailed as e:
                reason, temporary = e.reason, e.temporary
            except Exception as e:  # a bug in a sink must not kill the worker, nor print its locals
                reason, temporary = f"internal error ({type(e).__name__})", False
            if not temporary or attempt == attempts - 1:
                tried = f"{attempt + 1} attempt{'s' if attempt else ''}"
                self._log(self._scrub(f"notify: {notification.kind.value} to {sink.name} not delivered "
                                      f"after {tried}: {reason}"))
                return False
            self._sleep(self.backoff_seconds * 2 ** attempt)
        return False

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            self.deliver(job.sink, job.notification)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


def build_notifier(settings: Settings, env: Mapping[str, str] | None = None,
                   log: Callable[[str], None] = log_line) -> Notifier:
    """Return a Dispatcher over the configured sinks, or a NullNotifier when none is (or notify.events is none).

    A misconfigured sink (no bot token or SMTP password, a bad secret file, a missing CA file) is left out with
    one log line: notifying
    must never stop a command.
    """
    kinds = () if settings["notify.events"] == "none" else (
        EVENT_KINDS if settings["notify.events"] == "all" else tuple(settings["notify.events"].split(",")))
    sinks: list[Sink] = []
    if settings["notify.webhook_url"]:
        sinks.append(WebhookSink(settings["notify.webhook_url"]))
    chat_id = settings["notify.telegram_chat_id"]
    if chat_id:
        try:
            token = telegram_token(settings, env)
        except ConfigError as e:
            log(f"notify: Telegram left out: {e.message}")
            token = None
        else:
            if token is None:
                log("notify: Telegram left out: notify.telegram_chat_id is set but no bot token "
                    "(set ROBSON_TELEGRAM_BOT_TOKEN or notify.telegram_token_file)")
        if token is not None:
            sinks.append(TelegramSink(token.value, chat_id, base_url=settings["notify.telegram_base_url"]))
    if settings["notify.email_to"]:
        email = _email_sink(settings, env, log)
        if email is not None:
            sinks.append(email)
    if not sinks or not kinds:
        return NullNotifier()
    return Dispatcher(sinks, kinds=kinds, timeout_seconds=float(settings["notify.timeout_seconds"]),
                      retries=settings["notify.retries"], backoff_seconds=float(settings["notify.retry_backoff_seconds"]),
                      drain_seconds=float(settings["notify.drain_seconds"]), log=log)


def _email_sink(settings: Settings, env: Mapping[str, str] | None, log: Callable[[str], None]) -> EmailSink | None:
    """The e-mail sink the settings describe, or None with one log line when its password or CA file is missing."""
    from pathlib import Path

    username, ca_file = settings["notify.smtp_username"], settings["notify.smtp_ca_file"]
    try:
        password = smtp_password(settings, env)
    except ConfigError as e:
        log(f"notify: e-mail left out: {e.message}")
        return None
    if username and password is None:
        log("notify: e-mail left out: notify.smtp_username is set but no password "
            "(set ROBSON_SMTP_PASSWORD or notify.smtp_password_file)")
        return None
    if ca_file and not Path(ca_file).expanduser().is_file():
        log(f"notify: e-mail left out: notify.smtp_ca_file {ca_file} does not exist")
        return None
    return EmailSink(host=settings["notify.smtp_host"], port=smtp_port(settings), tls=settings["notify.smtp_tls"],
                     sender=settings["notify.email_from"], recipients=settings["notify.email_to"], username=username,
                     password=None if password is None else password.value,
                     ca_file=None if ca_file is None else str(Path(ca_file).expanduser()))
