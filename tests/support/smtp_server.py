"""A real SMTP server on 127.0.0.1 (aiosmtpd), for sending email through Django's SMTP backend.

``SmtpServer`` records every accepted message in ``server.messages`` (envelope sender,
recipients and the parsed ``email.message.Message``). ``server.fail_next(code_and_text,
times=1)`` makes the next DATA commands answer an error such as ``"451 4.3.0 try again
later"``; ``server.stop()`` leaves the port closed (connection refused), like a server that
is down.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        return self.server._accept(envelope)


class SmtpServer:
    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self.messages: list[ReceivedMail] = []
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> Self:
        if self._controller is None:
            self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            self._controller.start()
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fail_next(self, reply: str = "451 4.3.0 Try again later", *, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([reply] * times)

    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.messages)

    def _accept(self, envelope: Any) -> str:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"
