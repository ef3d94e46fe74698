"""A loopback server that speaks a generic HTTP SMS gateway protocol.

Route: ``POST /v1/messages`` with ``Authorization: Bearer <token>`` and a JSON body
``{"to": "+15551234567", "message": "..."}`` (one recipient per request):

- ``201 {"id", "status": "queued", "to"}`` when accepted;
- ``401 {"error": "invalid_token", ...}`` for a missing or wrong bearer token;
- ``400 {"error": "invalid_request", ...}`` for a body that is not JSON, a ``to`` that is
  not E.164, or a ``message`` that is empty or over 1600 characters;
- anything else (5xx, slow answers, resets) through ``server.faults``.

Accepted messages are kept in ``server.messages`` as ``(to, message)``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from typing import Any

from tests.support.loopback import LoopbackServer, Request, Response

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_MESSAGE = 1600


class SmsGatewayServer(LoopbackServer):
    """The SMS gateway on 127.0.0.1; ``gateway_url`` and ``token`` are what clients need."""

    def __init__(self, *, token: str = "test-sms-token") -> None:
        super().__init__()
        self.token = token
        self.messages: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.route("POST", r"/v1/messages", self._send)

    @property
    def gateway_url(self) -> str:
        return self.url + "/v1/messages"

    def received(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.messages)

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message.replace(" ", "_"), "message": message}

    def authorize(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"error": "invalid_token", "message": "missing or unknown token"}
        return None

    def _send(self, request: Request) -> Response:
        try:
            body = json.loads(request.body)
        except ValueError:
            return 400, {}, {"error": "invalid_request", "message": "body is not JSON"}
        to = body.get("to") if isinstance(body, dict) else None
        text = body.get("message") if isinstance(body, dict) else None
        if not isinstance(to, str) or not E164.match(to):
            return 400, {}, {"error": "invalid_request", "message": f"'to' is not E.164: {to!r}"}
        if not isinstance(text, str) or not 0 < len(text) <= MAX_MESSAGE:
            return 400, {}, {"error": "invalid_request", "message": "'message' empty or too long"}
        with self._lock:
            self.messages.append((to, text))
            message_id = f"msg_{next(self._ids)}"
        return 201, {}, {"id": message_id, "status": "queued", "to": to}
