"""schemathesis over /v1/openapi.json, in process: no 5xx, and every response (status code,
content type, body) matches the documented schema, signed in as an admin (every operation
is open to it) over a database with rows in every table the API reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.support.api import (
    bearer,
    make_user,
    paper_broker,  # noqa: F401  (fixture)
    trading_world,
)

schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", application)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    """The WSGI app closes database connections at the end of each request, which would
    close the test's transaction: Django's own test client turns that off the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def admin_token(settings: Any) -> str:
    settings.API_RATE_LIMIT_USER_PER_MINUTE = 0  # off: hypothesis sends many requests
    settings.API_RATE_LIMIT_IP_PER_MINUTE = 0
    settings.API_RATE_LIMIT_LOGIN_PER_MINUTE = 0
    cache.clear()
    trading_world(positions=2, orders=3)
    return bearer(make_user("admin"))


@pytest.mark.django_db
@pytest.mark.usefixtures("paper_broker")
@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
def test_api_conforms_to_its_schema(case: Any, admin_token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, checks=CHECKS)
