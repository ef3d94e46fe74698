"""A loopback server that speaks Alpaca's market-data REST protocol (v2 stock bars).

Point the real SDK at it: ``StockHistoricalDataClient(key, secret, url_override=server.url)``
(the override is the origin, without ``/v2``). Routes:

- ``GET /v2/stocks/bars?symbols=A,B&timeframe=..`` → ``{"bars": {SYM: [...]}, "next_page_token"}``
- ``GET /v2/stocks/{symbol}/bars?timeframe=..`` → ``{"bars": [...], "symbol", "next_page_token"}``

As the real API: the ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` headers are checked on
every route (401 when missing, 403 when wrong), parameters are validated (422 with
``{"code": 42210000, "message": ...}``), ``limit`` (default 1000, 1..10000) counts the bars of
all symbols of a page together, symbols come in alphabetical order and each symbol's bars
in time order, and ``next_page_token`` is an opaque token (``null`` on the last page).
``page_cap`` lowers the page size below the requested limit so tests can page through a few
dozen bars (alpaca-py always asks for 10000).

Daily bars are stamped at midnight New York time, as Alpaca does: ``add_bars`` converts our
canonical daily ``BarRecord`` timestamps (session date at 00:00 UTC) to that.

Trading endpoints can be added with ``self.route(...)`` in a subclass or in a test, e.g.
``server.route("GET", r"/v2/account", handler)``; they share the credential check.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from marketdata.domain import BarRecord, Timeframe
from tests.support.loopback import BarBook, LoopbackServer, Request, Response, rfc3339

EXCHANGE_TZ = ZoneInfo("America/New_York")
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
FEEDS = frozenset({"sip", "iex", "otc", "boats", "delayed_sip", "overnight"})
ADJUSTMENTS = frozenset({"raw", "split", "dividend", "spin-off", "all"})
SORTS = frozenset({"asc", "desc"})

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|z|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMEFRAME = re.compile(r"^(?P<amount>\d+)(?P<unit>Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}


class ParamError(ValueError):
    """A request parameter the vendor would reject; the message is the vendor's."""


def parse_timeframe(value: str) -> str:
    """Alpaca's timeframe rules; returns the canonical spelling (``5T`` → ``5Min``)."""
    match = _TIMEFRAME.match(value)
    if not match:
        raise ParamError(f"invalid timeframe: {value!r}")
    amount, unit = int(match["amount"]), _UNITS.get(match["unit"], match["unit"])
    valid = {
        "Min": 1 <= amount <= 59,
        "Hour": 1 <= amount <= 23,
        "Day": amount == 1,
        "Week": amount == 1,
        "Month": amount in (1, 2, 3, 4, 6, 12),
    }[unit]
    if not valid:
        raise ParamError(f"invalid timeframe: {value!r}")
    return f"{amount}{unit}"


def parse_rfc3339(name: str, value: str) -> datetime:
    """RFC 3339 with an offset (up to nanoseconds) or a bare ``YYYY-MM-DD`` (00:00 UTC)."""
    if _DATE.match(value):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError as error:
            raise ParamError(f"invalid {name}: {value!r}: {error}") from None
    match = _RFC3339.match(value)
    if not match:
        raise ParamError(f"invalid {name}: {value!r} is not an RFC 3339 time or a date")
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    tz = "+00:00" if match["tz"] in ("Z", "z") else match["tz"]
    try:
        return datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}{tz}").astimezone(UTC)
    except ValueError as error:
        raise ParamError(f"invalid {name}: {value!r}: {error}") from None


def vendor_bar_time(ts: datetime, timeframe: str) -> datetime:
    """Vendors stamp daily bars at midnight New York time; ours use the date at 00:00 UTC."""
    ts = ts.astimezone(UTC)
    if timeframe == Timeframe.DAY_1.value and ts.time() == time(0):
        return datetime.combine(ts.date(), time(0), tzinfo=EXCHANGE_TZ).astimezone(UTC)
    return ts


def _timeframe_key(timeframe: Timeframe | str) -> str:
    return parse_timeframe(timeframe.value if isinstance(timeframe, Timeframe) else timeframe)


def _page_token(symbol: str, ts: datetime) -> str:
    stamp = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return base64.b64encode(f"{symbol}|M|{stamp}".encode()).decode()


def _read_page_token(token: str) -> tuple[str, datetime]:
    try:
        symbol, _, stamp = base64.b64decode(token, validate=True).decode().split("|")
        return symbol, parse_rfc3339("page_token", stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ParamError("invalid page_token") from None


class AlpacaServer(LoopbackServer):
    """Alpaca's market-data API on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        secret_key: str = "test-secret",
        page_cap: int = MAX_LIMIT,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret_key = secret_key
        self.page_cap = page_cap
        self.now = now or (lambda: datetime.now(UTC))
        # symbol -> canonical timeframe -> bar time -> wire row
        self.book: BarBook[datetime] = BarBook()
        self.route("GET", r"/v2/stocks/bars", self._multi_bars)
        self.route("GET", r"/v2/stocks/(?P<symbol>[^/]+)/bars", self._single_bars)
        self.route("GET", r"/v2/stocks/quotes/latest", self._latest_quotes)
        self._quotes: dict[str, dict[str, Any]] = {}

    # -- data ------------------------------------------------------------------------------

    def add_bars(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        bars: Iterable[BarRecord | Mapping[str, Any]],
    ) -> int:
        """Store bars to serve; a bar at an existing time replaces it. Returns the count.

        ``bars`` are ``BarRecord`` objects or wire dicts (``t`` as RFC 3339 text or an aware
        datetime, ``o h l c v`` and optionally ``n vw``).
        """
        key = _timeframe_key(timeframe)
        return self.book.put(symbol, key, [self._row(bar, key) for bar in bars])

    def clear_bars(self, symbol: str | None = None) -> None:
        self.book.clear(symbol)

    def stored_bars(self, symbol: str, timeframe: Timeframe | str) -> list[dict[str, Any]]:
        """The wire rows stored for a series, in time order."""
        key = _timeframe_key(timeframe)
        return [row for _, row in self.book.select(symbol, key)]

    @staticmethod
    def _row(bar: BarRecord | Mapping[str, Any], timeframe: str) -> tuple[datetime, dict[str, Any]]:
        if isinstance(bar, BarRecord):
            ts = vendor_bar_time(bar.ts, timeframe)
            return ts, {
                "t": rfc3339(ts),
                "o": bar.open,
                "h": bar.high,
                "l": bar.low,
                "c": bar.close,
                "v": bar.volume,
                "n": bar.trade_count,
                "vw": bar.vwap,
            }
        row = dict(bar)
        raw = row["t"]
        ts = raw.astimezone(UTC) if isinstance(raw, datetime) else parse_rfc3339("t", str(raw))
        row["t"] = rfc3339(ts)
        return ts, row

    # -- protocol --------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        key = request.header("APCA-API-KEY-ID")
        secret = request.header("APCA-API-SECRET-KEY")
        if not key or not secret:
            return 401, {}, {"message": "unauthorized."}
        if key != self.api_key or secret != self.secret_key:
            return 403, {}, {"message": "forbidden."}
        return None

    def error_body(self, status: int, message: str) -> Any:
        return {"code": status * 100_000 + 10_000, "message": message}

    def invalid(self, message: str) -> Response:
        return 422, {}, self.error_body(422, message)

    def set_quote(
        self,
        symbol: str,
        *,
        bid: Decimal | float,
        ask: Decimal | float,
        bid_size: int = 100,
        ask_size: int = 100,
        t: datetime | None = None,
    ) -> None:
        """The quote ``GET /v2/stocks/quotes/latest`` answers for ``symbol`` from now on."""
        self._quotes[symbol.upper()] = {
            "t": rfc3339(t or self.now()),
            "bx": "V",
            "bp": bid,
            "bs": bid_size,
            "ax": "V",
            "ap": ask,
            "as": ask_size,
            "c": ["R"],
            "z": "C",
        }

    def _latest_quotes(self, request: Request) -> Response:
        symbols = [
            s.strip().upper() for s in request.query.get("symbols", "").split(",") if s.strip()
        ]
        if not symbols:
            return self.invalid("invalid symbols: at least one symbol is required")
        if request.query.get("feed", "iex") not in FEEDS:
            return self.invalid(f"invalid feed: {request.query['feed']!r}")
        return 200, {}, {"quotes": {s: self._quotes[s] for s in symbols if s in self._quotes}}

    def _multi_bars(self, request: Request) -> Response:
        raw = request.query.get("symbols", "")
        symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
        if not symbols:
            return self.invalid("invalid symbols: at least one symbol is required")
        try:
            page, token = self._page(request, symbols)
        except ParamError as error:
            return self.invalid(str(error))
        return 200, {}, {"bars": page, "next_page_token": token}

    def _single_bars(self, request: Request) -> Response:
        symbol = request.params["symbol"].upper()
        try:
            page, token = self._page(request, [symbol])
        except ParamError as error:
            return self.invalid(str(error))
        return 200, {}, {"bars": page.get(symbol, []), "symbol": symbol, "next_page_token": token}

    def _page(
        self, request: Request, symbols: list[str]
    ) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
        q = request.query
        if "timeframe" not in q:
            raise ParamError("invalid timeframe: missing")
        timeframe = parse_timeframe(q["timeframe"])
        now = self.now()
        start = (
            parse_rfc3339("start", q["start"])
            if q.get("start")
            else datetime.combine(now.astimezone(EXCHANGE_TZ).date(), time(0), tzinfo=EXCHANGE_TZ)
        )
        end = parse_rfc3339("end", q["end"]) if q.get("end") else now
        if end < start:
            raise ParamError("invalid end: end should not be before start")
        try:
            limit = int(q.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise ParamError(f"invalid limit: {q['limit']!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ParamError(f"invalid limit: must be between 1 and {MAX_LIMIT}")
        if q.get("feed") and q["feed"] not in FEEDS:
            raise ParamError(f"invalid feed: {q['feed']!r}")
        if q.get("adjustment") and not set(q["adjustment"].split(",")) <= ADJUSTMENTS:
            raise ParamError(f"invalid adjustment: {q['adjustment']!r}")
        sort = q.get("sort") or "asc"
        if sort not in SORTS:
            raise ParamError(f"invalid sort: {sort!r}")
        descending = sort == "desc"

        # Every matching bar of every symbol, in response order: symbol, then time.
        flat: list[tuple[str, datetime, dict[str, Any]]] = []
        for symbol in sorted(set(symbols)):
            rows = self.book.select(symbol, timeframe, start, end, descending=descending)
            flat.extend((symbol, ts, row) for ts, row in rows)

        first = 0
        if q.get("page_token"):
            after = _read_page_token(q["page_token"])

            def position(item: tuple[str, datetime, Any]) -> tuple[str, float]:
                seconds = item[1].timestamp()
                return item[0], -seconds if descending else seconds

            mark = position((after[0], after[1], None))
            first = next((i for i, item in enumerate(flat) if position(item) > mark), len(flat))

        size = min(limit, self.page_cap)
        chunk = flat[first : first + size]
        page: dict[str, list[dict[str, Any]]] = {}
        for symbol, _, row in chunk:
            page.setdefault(symbol, []).append(row)
        more = first + size < len(flat)
        token = _page_token(chunk[-1][0], chunk[-1][1]) if more and chunk else None
        return page, token
