"""A real SMTP server on 127.0.0.1 for the e-mail notifier's tests (aiosmtpd), with certificates from a throwaway CA.

    with SmtpServer(tls="starttls", certificate=ca.issue_cert("127.0.0.1"), users={"robson": "pw"}) as server:
        ...  # server.port; server.messages; server.logins; server.script = ["451 4.3.0 try again later"]

tls "starttls" offers and requires STARTTLS (and AUTH only after it), "tls" speaks TLS from the first byte,
"none" is plain. `script` answers the next DATA commands (then 250); each accepted message is parsed.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class _Handler:
    messages: list[Received] = field(default_factory=list)
    script: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.script:
            return self.script.pop(0)
        raw = envelope.original_content or envelope.content
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      message_from_bytes(raw, policy=policy.default), raw))
        return "250 2.0.0 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpServer:
    """aiosmtpd on 127.0.0.1: plain, STARTTLS or implicit TLS, optional AUTH; records messages and logins."""

    def __init__(self, *, tls: str = "starttls", certificate: Any = None, users: dict[str, str] | None = None) -> None:
        self.handler = _Handler()
        self.logins: list[tuple[str, str]] = []  # every (login, password) tried
        self.port = free_port()
        context = None
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            certificate.configure_cert(context)
        options: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "robson-test-smtp"}
        if tls == "starttls":
            options |= {"tls_context": context, "require_starttls": True}
        elif tls == "tls":
            options |= {"ssl_context": context}
        if users is not None:  # AUTH only inside TLS after STARTTLS (aiosmtpd cannot tell that implicit TLS is TLS)
            options |= {"authenticator": self._authenticator(users), "auth_required": True,
                        "auth_require_tls": tls == "starttls"}
        self.controller = Controller(self.handler, **options)

    def _authenticator(self, users: dict[str, str]):
        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            if not isinstance(auth_data, LoginPassword):
                return AuthResult(success=False, handled=False)
            login, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((login, password))
            return AuthResult(success=users.get(login) == password, handled=False)  # aiosmtpd answers 235 or 535

        return authenticate

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def script(self) -> list[str]:
        return self.handler.script

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
