"""The request guard: input PostgreSQL cannot take, and bodies over the upload limit, are refused
at the edge, before any view, form or query sees them.

- A NUL character (U+0000) in a query parameter, a form field or any JSON string (keys too):
  PostgreSQL refuses NUL in ``text`` and ``jsonb``, so it would otherwise surface as a 500 from
  whichever query first touched it (the login, a list filter, a stored field). The API answers
  422 ``validation_error`` naming each field (``query.symbol``, ``body.values.name``, ...);
  the dashboard and the admin answer a plain 400 page.
- A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (or more form fields than
  ``DATA_UPLOAD_MAX_NUMBER_FIELDS``): 413 (400 for the field count) with the API's error
  envelope under ``/v1``, a short page elsewhere. Uploaded files in multipart bodies are not
  read here: only their form fields count, as Django counts them.
- An API body that is JSON but not an object: 422 (ninja would read ``[null]`` as an object
  with every field missing, which an all-optional schema accepts).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from html import escape
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/v1/"
NUL = "\x00"
JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class NotAnObject(Exception):
    """An API request body that is JSON but not an object (a list, a number, null)."""


class RequestGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            fields = list(nul_fields(request))
        except RequestDataTooBig:
            return too_large(request)
        except NotAnObject:
            problem = "body: expected a JSON object"
            return refused(request, 422, "validation_error", problem, [problem])
        except TooManyFieldsSent:
            return refused(request, 400, "bad_request", "too many parameters in the request", [])
        except SuspiciousOperation as error:  # a malformed multipart body and the like
            return refused(request, 400, "bad_request", f"malformed request: {error}", [])
        if fields:
            problems = [f"{field}: the NUL character (U+0000) is not allowed" for field in fields]
            return refused(request, 422, "validation_error", "; ".join(problems), problems)
        return self.get_response(request)


def nul_fields(request: HttpRequest) -> Iterator[str]:
    """Where the request carries a NUL: ``query.<name>``, ``form.<name>``, ``body.<path>``.

    Reading the body here raises ``RequestDataTooBig`` for a body over the limit, as every
    later reader would."""
    yield from _mapping_fields("query", request.GET.lists())
    content_type = (request.content_type or "").lower()
    if content_type in FORM_TYPES:
        if request.method == "POST":
            yield from _mapping_fields("form", request.POST.lists())
        return
    if request.method in ("GET", "HEAD", "OPTIONS") and not request.META.get("CONTENT_LENGTH"):
        return
    body = request.body  # the size check; every view reads it through here anyway
    is_json = content_type in JSON_TYPES or content_type.endswith("+json")
    if is_json and request.path.startswith(API_PREFIX) and body.strip()[:1] not in (b"{", b""):
        try:
            json.loads(body)
        except ValueError:
            return  # not JSON: the API's parser answers that (400)
        raise NotAnObject  # every request body of the API is a JSON object
    if is_json and (b"\\u0000" in body or b"\x00" in body):
        try:
            data = json.loads(body)
        except ValueError:
            return  # not JSON: the API's parser answers that (400/422)
        yield from _json_fields(data, "body")


def _mapping_fields(where: str, items: Any) -> Iterator[str]:
    for name, values in items:
        if NUL in name or any(NUL in value for value in values):
            yield f"{where}.{_shown(name)}"


def _json_fields(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if NUL in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{_shown(key)}"
            if NUL in key:
                yield where
            else:
                yield from _json_fields(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_fields(item, f"{path}.{index}")


def _shown(name: str) -> str:
    return name.replace(NUL, "\\x00")


def too_large(request: HttpRequest) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = (
        f"the request body is larger than the limit of {limit} bytes"
        if limit
        else "the request body is too large"
    )
    return refused(request, 413, "payload_too_large", message, [], details={"limit_bytes": limit})


def refused(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    problems: list[str],
    *,
    details: dict[str, Any] | None = None,
) -> HttpResponse:
    """The API's error envelope under ``/v1``, a short HTML page elsewhere."""
    if request.path.startswith(API_PREFIX):
        shown: dict[str, Any] = {**(details or {})}
        if problems:
            shown["problems"] = problems
        body = {"error": {"code": code, "message": message, "details": shown}}
        return JsonResponse(body, status=status)
    return error_page(status, message)


TITLES = {400: "Bad request", 413: "Request too large", 422: "Bad request"}


def error_page(status: int, message: str) -> HttpResponse:
    title = TITLES.get(status, "Bad request")
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title} · Quant platform</title></head><body>"
        f"<h1>{title}</h1><p>{escape(message)}</p>"
        '<p><a href="javascript:history.back()">Back</a></p></body></html>'
    )
    # The dashboard's forms are HTML: the form-level status of a refused field is 400.
    return HttpResponse(page, status=400 if status == 422 else status, content_type="text/html")
