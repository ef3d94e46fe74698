"""A loopback server that speaks Polygon.io's aggregates REST protocol.

Route: ``GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}`` with
``apiKey`` (query) or ``Authorization: Bearer``, ``adjusted``, ``sort``, ``limit`` (default
5000, at most 50000) and ``cursor``. ``from``/``to`` are ``YYYY-MM-DD`` (a New York day) or
epoch milliseconds; bars with ``from <= t <= to`` are returned.

Pagination is Polygon's: a page that is not the last carries ``next_url``, a full URL on
this server whose path starts (``asc``) or ends (``desc``) just past the last bar returned
and whose ``cursor`` query parameter carries the original ``limit``, ``sort`` and
``adjusted`` (base64 of ``limit=..&sort=..&adjusted=..``), as in Polygon's documentation.
The URL holds no API key: the client must add its own. ``page_cap`` lowers the page size
below ``limit`` so tests can page through a few bars.

Errors: 401 ``{"status": "ERROR", "request_id", "error"}`` for a missing or unknown key,
400 with the same shape for bad parameters. Daily aggregates are stamped at midnight New York
time, like Polygon's.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from marketdata.domain import BarRecord, Timeframe
from tests.support.alpaca_server import EXCHANGE_TZ, vendor_bar_time
from tests.support.loopback import BarBook, LoopbackServer, Request, Response

DEFAULT_LIMIT = 5000
MAX_LIMIT = 50_000
TIMESPANS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
TIMEFRAME_SPANS: dict[Timeframe, tuple[int, str]] = {
    Timeframe.MIN_1: (1, "minute"),
    Timeframe.MIN_5: (5, "minute"),
    Timeframe.MIN_15: (15, "minute"),
    Timeframe.HOUR_1: (1, "hour"),
    Timeframe.DAY_1: (1, "day"),
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MILLIS = re.compile(r"^\d{1,16}$")

AGGS_PATH = (
    r"/v2/aggs/ticker/(?P<ticker>[^/]+)/range/(?P<multiplier>[^/]+)/(?P<timespan>[^/]+)"
    r"/(?P<start>[^/]+)/(?P<end>[^/]+)"
)


class PolygonParamError(ValueError):
    pass


def to_millis(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


def _bound(name: str, value: str, *, end: bool) -> int:
    """Epoch ms of a ``from``/``to`` path segment; a date means that New York day."""
    if _MILLIS.match(value):
        return int(value)
    if _DATE.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise PolygonParamError(f"Could not parse the '{name}' parameter: {value!r}") from None
        if end:
            day += timedelta(days=1)
        stamp = to_millis(datetime.combine(day, time(0), tzinfo=EXCHANGE_TZ))
        return stamp - 1 if end else stamp
    raise PolygonParamError(
        f"Could not parse the '{name}' parameter: {value!r}; use YYYY-MM-DD or a millisecond"
        " timestamp"
    )


def _span_key(timeframe: Timeframe | str | tuple[int, str]) -> str:
    if isinstance(timeframe, tuple):
        multiplier, span = timeframe
    else:
        multiplier, span = TIMEFRAME_SPANS[Timeframe(timeframe)]
    if span not in TIMESPANS or multiplier < 1:
        raise ValueError(f"bad aggregate size {multiplier}/{span}")
    return f"{multiplier}/{span}"


class PolygonServer(LoopbackServer):
    """Polygon.io's aggregates API on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self, *, api_key: str = "test-polygon-key", page_cap: int = MAX_LIMIT, status: str = "OK"
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_cap = page_cap
        self.status = status  # "DELAYED" for a free-tier key
        # ticker -> "multiplier/timespan" -> epoch ms -> wire row
        self.book: BarBook[int] = BarBook()
        self.route("GET", AGGS_PATH, self._aggregates)

    # -- data ------------------------------------------------------------------------------

    def add_bars(
        self,
        symbol: str,
        timeframe: Timeframe | str | tuple[int, str],
        bars: Iterable[BarRecord | Mapping[str, Any]],
    ) -> int:
        """Store aggregates to serve (a bar at an existing time replaces it); returns the count.

        ``timeframe`` is our ``Timeframe`` or ``(multiplier, timespan)``; ``bars`` are
        ``BarRecord`` objects or wire dicts (``t`` in epoch ms or an aware datetime).
        """
        key = _span_key(timeframe)
        daily = key == "1/day"
        return self.book.put(symbol, key, [self._row(bar, daily) for bar in bars])

    def clear_bars(self, symbol: str | None = None) -> None:
        self.book.clear(symbol)

    def stored_bars(
        self, symbol: str, timeframe: Timeframe | str | tuple[int, str]
    ) -> list[dict[str, Any]]:
        key = _span_key(timeframe)
        return [row for _, row in self.book.select(symbol, key)]

    @staticmethod
    def _row(bar: BarRecord | Mapping[str, Any], daily: bool) -> tuple[int, dict[str, Any]]:
        if isinstance(bar, BarRecord):
            ts = vendor_bar_time(bar.ts, Timeframe.DAY_1.value if daily else "")
            t = to_millis(ts)
            row: dict[str, Any] = {
                "v": bar.volume,
                "vw": bar.vwap,
                "o": bar.open,
                "c": bar.close,
                "h": bar.high,
                "l": bar.low,
                "t": t,
                "n": bar.trade_count,
            }
            return t, {k: v for k, v in row.items() if v is not None}
        row = dict(bar)
        raw = row["t"]
        t = to_millis(raw) if isinstance(raw, datetime) else int(raw)
        row["t"] = t
        return t, row

    # -- protocol --------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        return {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": message}

    def authorize(self, request: Request) -> Response | None:
        key = request.query.get("apiKey")
        bearer = request.header("Authorization") or ""
        if key is None and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        if not key:
            return 401, {}, self.error_body(401, "API Key was not provided")
        if key != self.api_key:
            return 401, {}, self.error_body(401, "Unknown API Key")
        return None

    def _aggregates(self, request: Request) -> Response:
        try:
            return 200, {}, self._page(request)
        except PolygonParamError as error:
            return 400, {}, self.error_body(400, str(error))

    def _page(self, request: Request) -> dict[str, Any]:
        p, q = request.params, dict(request.query)
        ticker = p["ticker"].upper()
        if not p["multiplier"].isdigit() or int(p["multiplier"]) < 1:
            raise PolygonParamError(f"Could not parse the multiplier: {p['multiplier']!r}")
        if p["timespan"] not in TIMESPANS:
            raise PolygonParamError(
                f"Could not parse the timespan: {p['timespan']!r}; use one of "
                + ", ".join(TIMESPANS)
            )
        if "cursor" in q:
            q.update(self._read_cursor(q["cursor"]))
        try:
            limit = int(q.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise PolygonParamError(f"Could not parse the limit: {q['limit']!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise PolygonParamError(f"limit must be between 1 and {MAX_LIMIT}")
        adjusted = (q.get("adjusted") or "true").lower()
        if adjusted not in ("true", "false"):
            raise PolygonParamError(f"Could not parse adjusted: {q['adjusted']!r}")
        sort = q.get("sort") or "asc"
        if sort not in ("asc", "desc"):
            raise PolygonParamError(f"Could not parse sort: {sort!r}")
        start = _bound("from", p["start"], end=False)
        end = _bound("to", p["end"], end=True)

        key = f"{int(p['multiplier'])}/{p['timespan']}"
        rows = [
            row for _, row in self.book.select(ticker, key, start, end, descending=sort == "desc")
        ]

        size = min(limit, self.page_cap)
        page = rows[:size]
        payload: dict[str, Any] = {
            "ticker": ticker,
            "queryCount": len(page),
            "resultsCount": len(page),
            "adjusted": adjusted == "true",
        }
        if page:
            payload["results"] = page
        payload.update({"status": self.status, "request_id": uuid.uuid4().hex, "count": len(page)})
        if len(rows) > size:
            last = page[-1]["t"]
            lo, hi = (last + 1, p["end"]) if sort == "asc" else (p["start"], last - 1)
            query = urlencode({"limit": limit, "sort": sort, "adjusted": adjusted})
            cursor = base64.urlsafe_b64encode(query.encode()).decode().rstrip("=")
            payload["next_url"] = (
                f"{self.url}/v2/aggs/ticker/{ticker}/range/{p['multiplier']}/{p['timespan']}"
                f"/{lo}/{hi}?cursor={cursor}"
            )
        return payload

    @staticmethod
    def _read_cursor(cursor: str) -> dict[str, str]:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            decoded = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise PolygonParamError("Could not parse the cursor") from None
        values = {k: v[-1] for k, v in parse_qs(decoded).items()}
        if not values or not set(values) <= {"limit", "sort", "adjusted"}:
            raise PolygonParamError("Could not parse the cursor")
        return values
