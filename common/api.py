"""The REST API ``/v1``: one django-ninja router per app, registered here.

Every response is ``{"data": ...}`` (lists add ``"pagination"``); every error is
``{"error": {"code", "message", "details"}}`` with its HTTP status, mapped once here from the
``ApplicationError`` hierarchy and from ninja's own errors. OpenAPI at ``/v1/openapi.json``,
Swagger UI at ``/v1/docs`` (served from the ninja package: no CDN).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import orjson
import structlog
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Field, Path, Schema, Status
from ninja.renderers import BaseRenderer
from pydantic import (
    AfterValidator,
    BaseModel,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError, core_schema

from quant.errors import ValidationError

log = structlog.get_logger(__name__)

T = TypeVar("T")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


# --- Shapes shared by every router --------------------------------------------------------


class Out(BaseModel):
    """Base of the response shapes: plain pydantic (the endpoints build dicts), which skips
    ninja's ORM-attribute resolution on every field of every row."""


class ErrorBody(Out):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(Out):
    error: ErrorBody


class PageMeta(Out):
    page: int
    per_page: int
    total: int = Field(description="rows matching, counted up to the list's cap")
    total_pages: int
    total_exact: bool = Field(
        description="false when more rows match than the cap: narrow the filters (dates)"
    )


MAX_ID = 2**63 - 1  # PostgreSQL bigint: a larger id can name no row
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="row id")]
OptionalId = Annotated[int | None, Field(None, ge=1, le=MAX_ID)]


# --- Input types: the schema says exactly what the server accepts -------------------------

# Days: ``YYYY-MM-DD`` within a range every date computation handles (the day after
# 9999-12-31 overflows; year 1 is no trading date). The pattern puts the range in the schema.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)
DAY_PATTERN = r"^(19|2[01])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
DAY_RULE = f"a day YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}"


def _day(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # a default
    if isinstance(value, str) and re.fullmatch(DAY_PATTERN, value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "day", "expected {rule}, got {value}", {"rule": DAY_RULE, "value": repr(value)[:40]}
    )


Day = Annotated[
    date,
    PlainValidator(_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DAY_PATTERN}),
]


def decimal_pattern(*, digits: int, places: int, positive: bool) -> str:
    """A plain decimal (no sign, exponent or leading zeros) with at most ``digits`` digits
    before the point and ``places`` after; with ``positive`` not zero."""
    if not positive:
        return rf"^(0|[1-9][0-9]{{0,{digits - 1}}})(\.[0-9]{{1,{places}}})?$"
    fractions = "|".join(
        f"{'0' * zeros}[1-9][0-9]{{0,{places - 1 - zeros}}}" for zeros in range(places)
    )
    return rf"^([1-9][0-9]{{0,{digits - 1}}}(\.[0-9]{{1,{places}}})?|0\.({fractions}))$"


@dataclass(frozen=True)
class DecimalString:
    """Money and quantities in requests: JSON strings, as in the answers (exact decimals),
    matching ``decimal_pattern``: ``Annotated[Decimal, DecimalString(14, 6, positive=True)]``."""

    digits: int
    places: int
    positive: bool = False
    percent: bool = False  # above 0 and at most 100

    @property
    def pattern(self) -> str:
        if self.percent:
            fraction = rf"(\.[0-9]{{1,{self.places}}})?"
            small = decimal_pattern(digits=1, places=self.places, positive=True)
            return rf"^(100(\.0{{1,{self.places}}})?|[1-9][0-9]?{fraction}|{small[1:-1]})$"
        return decimal_pattern(digits=self.digits, places=self.places, positive=self.positive)

    @property
    def rule(self) -> str:
        kind = "a positive decimal" if self.positive else "a decimal >= 0"
        if self.percent:
            return (
                f'a percentage above 0 and at most 100 as a JSON string, e.g. "2.5", with at '
                f"most {self.places} digits after the point"
            )
        return (
            f'{kind} as a JSON string, e.g. "12.5", with at most {self.digits} digits before '
            f"the point and {self.places} after"
        )

    def parse(self, value: Any) -> Decimal:
        if isinstance(value, Decimal):
            return value  # a default
        if isinstance(value, str) and re.fullmatch(self.pattern, value, re.ASCII):
            return Decimal(value)
        raise PydanticCustomError(
            "decimal",
            "expected {rule}, got {value}",
            {"rule": self.rule, "value": repr(value)[:40]},
        )

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_plain_validator_function(self.parse)

    def __get_pydantic_json_schema__(
        self, schema: Any, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "string", "pattern": self.pattern}


SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9./-]{0,31}$"
Symbol = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        pattern=SYMBOL_PATTERN,
        description="upper case, e.g. SPY or BRK.B",
    ),
]


def _distinct(symbols: list[str] | None) -> list[str] | None:
    seen: set[str] = set()
    for symbol in symbols or ():
        if symbol in seen:
            raise PydanticCustomError("duplicate", "{symbol} is given twice", {"symbol": symbol})
        seen.add(symbol)
    return symbols


# A list of distinct symbols: a duplicate is refused with the request, not in the worker.
SymbolList = Annotated[
    list[Symbol],
    Field(max_length=100, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_distinct),
]


class PageParams(Schema):
    page: int = Field(1, ge=1, le=100_000, description="1-based page number")
    per_page: int = Field(50, ge=1, le=500, description="rows per page (at most 500)")


_envelopes: dict[tuple[str, str], type[Out]] = {}


def Data(schema: Any, name: str | None = None) -> Any:
    """The ``{"data": schema}`` envelope model."""
    key = ("data", name or _name(schema))
    if key not in _envelopes:
        _envelopes[key] = create_model(f"{key[1]}Response", __base__=Out, data=(schema, ...))
    return _envelopes[key]


def Page(schema: Any) -> Any:
    """The ``{"data": [schema], "pagination": PageMeta}`` envelope model."""
    key = ("page", _name(schema))
    if key not in _envelopes:
        _envelopes[key] = create_model(
            f"{key[1]}Page", __base__=Out, data=(list[schema], ...), pagination=(PageMeta, ...)
        )
    return _envelopes[key]


def _name(schema: Any) -> str:
    name = getattr(schema, "__name__", None)
    if not name:
        raise TypeError(f"give a name for the envelope of {schema!r}")
    return str(name).removesuffix("Out")


def decimal_text(value: Decimal | None) -> str | None:
    """Money and quantities travel as JSON strings, exact and without trailing zeros."""
    if value is None:
        return None
    text = format(value.normalize(), "f") if value else "0"
    return text


def day_range(
    from_date: date | None, to_date: date | None
) -> tuple[datetime | None, datetime | None]:
    """Inclusive UTC days as a half-open range ``[start, end)``; a backwards range is a 422."""
    for name, day in (("from_date", from_date), ("to_date", to_date)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise ValidationError(
                f"{name}: expected {DAY_RULE}, got {day}",
                details={"problems": [f"{name}: expected {DAY_RULE}"]},
            )
    start = datetime.combine(from_date, time.min, UTC) if from_date else None
    end = datetime.combine(to_date, time.min, UTC) + timedelta(days=1) if to_date else None
    if start and end and end <= start:
        raise ValidationError(
            f"to_date {to_date} is before from_date {from_date}",
            details={"problems": ["to_date: before from_date"]},
        )
    return start, end


class Accepted(Out):
    id: int
    status: str
    url: str


def accepted(response: HttpResponse, url: str, obj: Any) -> Status[Any]:
    """202 Accepted for a queued job: its id and status, and ``Location`` to poll."""
    response["Location"] = url
    return Status(202, {"data": {"id": obj.pk, "status": obj.status, "url": url}})


def errors(*statuses: int) -> dict[int, Any]:
    """Documented error responses of an operation: a malformed request (400), no or a bad
    token (401), a body over the upload limit (413), invalid parameters (422) and the rate
    limit (429) apply to every one."""
    return {status: ErrorResponse for status in sorted({400, 401, 413, 422, 429, *statuses})}


def responses(status: int, schema: Any, *error_statuses: int) -> dict[int, Any]:
    return {status: schema, **errors(*error_statuses)}


def paginate(
    queryset: QuerySet[Any] | Sequence[Any],
    params: PageParams,
    serialize: Callable[[Iterable[Any]], list[Any]] | None = None,
    *,
    count_cap: int | None = None,
) -> dict[str, Any]:
    """One COUNT and one page query, whatever the page size (plus what ``serialize`` reads
    for the page as a whole). With ``count_cap`` the COUNT stops after that many rows (a
    COUNT over a LIMIT subquery): counting a whole large table on every poll costs more than
    the page itself."""
    if isinstance(queryset, QuerySet):
        total = queryset[: count_cap + 1].count() if count_cap else queryset.count()
    else:
        total = len(queryset)
    exact = count_cap is None or total <= count_cap
    total = total if exact else count_cap  # type: ignore[assignment]
    offset = (params.page - 1) * params.per_page
    rows = list(queryset[offset : offset + params.per_page])
    return {
        "data": serialize(rows) if serialize else rows,
        "pagination": {
            "page": params.page,
            "per_page": params.per_page,
            "total": total,
            "total_pages": max(1, math.ceil(total / params.per_page)),
            "total_exact": exact,
        },
    }


# Lists that grow without bound (orders, alerts) count their rows up to this many.
COUNT_CAP = 10_000


class JSONRenderer(BaseRenderer):
    """orjson: datetimes as RFC 3339 with ``Z``; what it does not know (Decimal, lazy text)
    goes through Django's JSON encoder."""

    media_type = "application/json"

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> bytes:
        try:
            return orjson.dumps(data, default=_encoder.default, option=orjson.OPT_UTC_Z)
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits echoed in details
            return json.dumps(data, cls=DjangoJSONEncoder).encode()


_encoder = DjangoJSONEncoder()
