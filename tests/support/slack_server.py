"""A loopback server that speaks Slack's incoming-webhook protocol.

Route: ``POST /services/{team}/{bot}/{secret}`` with a JSON body (``Content-Type:
application/json``) or a form field ``payload=<json>``. Slack answers in plain text, not JSON:

- ``200 ok`` for a message with a non-empty ``text`` or ``blocks``;
- ``400 invalid_payload`` for a body that is not a JSON object or has neither;
- ``400 invalid_blocks`` for blocks Slack would refuse (unknown type, a header over 150
  characters, a section without text or fields or over 10 fields, text over 3000);
- ``404 no_service`` for a webhook that does not exist (wrong path or secret);
- ``429 rate_limited`` with ``Retry-After`` (inject with ``server.faults.add(429, retry_after=1)``).

Accepted messages are kept in ``server.messages`` (parsed JSON, in arrival order).
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qs

from tests.support.loopback import LoopbackServer, Request, Response

WEBHOOK_PATH = r"/services/(?P<team>[A-Z0-9]+)/(?P<bot>[A-Z0-9]+)/(?P<secret>[A-Za-z0-9]+)"
BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text"}
ERROR_TEXT = {
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
}
_TEXT = {"Content-Type": "text/html"}  # what hooks.slack.com sends with its plain words


class InvalidBlocks(ValueError):
    pass


def _check_blocks(blocks: Any) -> None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        raise InvalidBlocks("blocks must be a list of at most 50")
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            raise InvalidBlocks(f"unknown block {block!r}")
        kind = block["type"]
        if kind == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                raise InvalidBlocks("a header needs plain_text of 1 to 150 characters")
        if kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if not text and not fields:
                raise InvalidBlocks("a section needs text or fields")
            if text and len(text.get("text", "")) > 3000:
                raise InvalidBlocks("section text over 3000 characters")
            if fields and (len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields)):
                raise InvalidBlocks("at most 10 fields of at most 2000 characters")
        if kind == "context" and not block.get("elements"):
            raise InvalidBlocks("a context needs elements")


class SlackServer(LoopbackServer):
    """Slack incoming webhooks on 127.0.0.1; ``webhook_url`` is the one that exists."""

    def __init__(
        self, *, team: str = "T0TEST", bot: str = "B0TEST", secret: str = "loopbacksecret"
    ) -> None:
        super().__init__()
        self.path = f"/services/{team}/{bot}/{secret}"
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.route("POST", WEBHOOK_PATH, self._post)

    @property
    def webhook_url(self) -> str:
        return self.url + self.path

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def error_body(self, status: int, message: str) -> Any:
        return ERROR_TEXT.get(status, "internal_error" if status >= 500 else message)

    def _post(self, request: Request) -> Response:
        if request.path != self.path:
            return 404, _TEXT, "no_service"
        try:
            payload = self._payload(request)
        except ValueError:
            return 400, _TEXT, "invalid_payload"
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return 400, _TEXT, "invalid_payload"
        if "blocks" in payload:
            try:
                _check_blocks(payload["blocks"])
            except InvalidBlocks:
                return 400, _TEXT, "invalid_blocks"
        with self._lock:
            self.messages.append(payload)
        return 200, _TEXT, "ok"

    @staticmethod
    def _payload(request: Request) -> Any:
        content_type = request.header("Content-Type", "") or ""
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(request.body.decode())
            return json.loads(form["payload"][-1]) if "payload" in form else None
        return json.loads(request.body)
