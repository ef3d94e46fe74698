"""schemathesis over /v1/openapi.json, in process, with every check schemathesis 4.32.5 has
(among them ``positive_data_acceptance``, "valid request rejected", and
``negative_data_rejection``, "invalid request accepted"), over its coverage and fuzzing phases,
signed in as a viewer, an operator and an admin, over a database with rows in every table the
API reads: no 5xx, every answer as documented, every request the schema allows accepted and
every request it forbids refused.

Budget: a fixed seed and ``derandomize`` make the run reproducible; ``MAX_EXAMPLES`` bounds
the fuzzing phase (the coverage phase generates what the schema defines): about a minute of
CPU per role on a 2-core machine.

Narrow exclusions, each for a principled reason:

- ``allow-x00 = false``: NUL (U+0000) is refused in every string by one edge rule
  (``config.middleware``, stated in the API description and tested in
  ``test_api_input_edges.py``); JSON Schema cannot say "no NUL at any depth" of the free-form
  objects (strategy config, model params, parameter grids) without a recursive schema.
- ``positive_data_acceptance`` runs through ``positive_data_acceptance_unless_documented``:
  a 422 or 409 for a schema-valid request passes only when the answer names one of the
  documented rules below that JSON Schema cannot express (cross-field rules such as ``end``
  after ``start``, and rules that depend on stored state such as the strategy's own parameters
  or the limits now in force). Any other rejection of valid data still fails.

The stateful phase runs as its own test per role (``test_api_state_machine_as_*``): the links
schemathesis infers from the schema (an id a response gives, a path parameter of that name)
chain real calls, e.g. a strategy's id into its runs, orders and mode transitions; the same
checks judge every step. ``STATEFUL_EXAMPLES`` scenarios of at most ``STATEFUL_STEPS`` calls
each keep it bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from hypothesis import HealthCheck, Phase, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from config.wsgi import application
from tests.support.api import (
    bearer,
    make_user,
    paper_broker,  # noqa: F401  (fixture)
    trading_world,
)

SEED = 20261207
MAX_EXAMPLES = 3
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 8

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"allow-x00": False, "max-examples": MAX_EXAMPLES},
        "phases": {
            "examples": {"enabled": False},  # the schema carries no examples
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", application, config=CONFIG)

# Rules the schema documents in words because JSON Schema cannot express them: the
# operation, and what its 422/409 answer says.
DOCUMENTED_RULES: dict[str, tuple[str, ...]] = {
    "GET /v1/orders": (r"is before from_date",),
    "GET /v1/alerts": (r"is before from_date",),
    "POST /v1/runs": (
        r"end \S+ is before start",
        r"gate_closed",
        r"has no vectorized form",
        r"no (stored )?bars",
    ),
    "POST /v1/walk-forward": (
        r"end \S+ is before start",
        r"gate_closed",
        r"grid",
        r"objective",
        r"parameter",
        r"window",
        r"no (stored )?bars",
    ),
    "POST /v1/models": (r"not after start", r"feature set", r"param", r"label"),
    "POST /v1/orders": (r"risk_rejected", r"gate_closed", r"live_trading_disabled"),
    "POST /v1/risk/limit-changes": (
        r"strategy",
        r"unknown (platform|strategy) limit",
        r"nothing would change",
        r"must be",
    ),
    "PATCH /v1/strategies/{strategy_id}": (
        r"send either config or config_yaml",
        r"config",
        r"strategy \S+: ",  # the config checked against its strategy class (the stored one)
    ),
    "POST /v1/controls/mode-transition": (r"gate_closed", r"evidence", r"backtest"),
    "POST /v1/controls/kill-switch": (r"admin code",),
}


def positive_data_acceptance_unless_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        rules = DOCUMENTED_RULES.get(f"{case.method.upper()} {case.path}", ())
        answer = response.text if response.status_code in (409, 422) else ""
        if any(re.search(rule, answer) for rule in rules):
            return None
        raise


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
def tokens(settings: Any) -> dict[str, str]:
    settings.DEBUG = False
    settings.API_RATE_LIMIT_USER_PER_MINUTE = 0  # off: hypothesis sends many requests
    settings.API_RATE_LIMIT_IP_PER_MINUTE = 0
    settings.API_RATE_LIMIT_LOGIN_PER_MINUTE = 0
    cache.clear()
    trading_world(positions=2, orders=3)
    return {role: bearer(make_user(role)) for role in ("viewer", "operator", "admin")}


def _schema_test(role: str) -> Any:
    @pytest.mark.django_db
    @pytest.mark.usefixtures("paper_broker")
    @schema.parametrize()
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
        derandomize=True,
    )
    def test(case: Any, tokens: dict[str, str]) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {tokens[role]}"},
            excluded_checks=[positive_data_acceptance],
            additional_checks=[positive_data_acceptance_unless_documented],
        )

    return test


test_api_conforms_to_its_schema_as_viewer = _schema_test("viewer")
test_api_conforms_to_its_schema_as_operator = _schema_test("operator")
test_api_conforms_to_its_schema_as_admin = _schema_test("admin")


def stateful_schema(token: str) -> Any:
    """The schema with link inference on (the stateful phase), every call signed in with
    ``token`` as configured credentials (the ``ignored_auth`` check still sends its own
    invalid ones)."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {token}"},
            "generation": {"allow-x00": False},
            "phases": {"stateful": {"enabled": True}},
        }
    )
    return schemathesis.openapi.from_wsgi("/v1/openapi.json", application, config=config)


def _state_machine_test(role: str) -> Any:
    @pytest.mark.django_db
    @pytest.mark.usefixtures("paper_broker")
    def test(tokens: dict[str, str]) -> None:
        failures: list[str] = []

        class Workflow(stateful_schema(tokens[role]).as_state_machine()):  # type: ignore[misc]
            def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
                # Collected, not raised: hypothesis would replay the scenario on a database
                # that has moved on (and call it flaky); every failure is reported below.
                try:
                    case.validate_response(
                        response,
                        # ignored_auth: the configured credentials replace the invalid ones
                        # this check generates in a scenario (it runs in the phases above)
                        excluded_checks=[positive_data_acceptance, ignored_auth],
                        additional_checks=[positive_data_acceptance_unless_documented],
                        transport_kwargs=kwargs or None,
                    )
                except Exception as error:
                    failures.append(f"{case.method} {case.formatted_path}: {error}")

        Workflow.run(
            settings=settings(
                max_examples=STATEFUL_EXAMPLES,
                stateful_step_count=STATEFUL_STEPS,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
        )
        assert failures == [], "\n\n".join(failures[:5])

    return test


test_api_state_machine_as_viewer = _state_machine_test("viewer")
test_api_state_machine_as_operator = _state_machine_test("operator")
test_api_state_machine_as_admin = _state_machine_test("admin")
