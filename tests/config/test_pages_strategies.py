"""The strategies pages: list, detail, the config editor's server-side validation, roles."""

from __future__ import annotations

import pytest
from django.test import Client

from backtests import services
from quant.backtest import BacktestConfig
from research.models import ApprovalKind, Strategy, StrategyVersion
from research.services import strategy_version_ensure
from risk.approvals import approval_request
from tests.backtests.conftest import reviewed, sma_config, sma_version, stored_bars
from tests.support.dashboard import page, user_with_role

__all__ = ["sma_version", "stored_bars"]  # fixtures of the backtests tests, used here

pytestmark = pytest.mark.django_db


@pytest.fixture
def strategy() -> Strategy:
    version, _ = strategy_version_ensure(config=sma_config(), source="file")
    return reviewed(version).strategy


def test_the_list_shows_mode_review_and_latest_run(
    viewer: Client, stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)
    html = page(viewer, "/strategies")
    assert "sma_crossover" in html and "Research" in html
    assert f"/runs/{run.pk}" in html and f"/strategies/{sma_version.strategy_id}" in html
    fragment = page(viewer, "/strategies", fragment="strategies")
    assert f"#{run.pk}" in fragment


def test_the_detail_shows_config_versions_performance_and_approvals(
    viewer: Client, stored_bars: dict[str, int], sma_version: StrategyVersion
) -> None:
    run = services.backtest_run_create(strategy_version=sma_version, config=BacktestConfig())
    services.backtest_run_execute(run_id=run.pk)
    html = page(viewer, f"/strategies/{sma_version.strategy_id}")
    assert "class: sma_crossover" in html  # the YAML in the editor
    assert "v1" in html and "YAML file" in html
    assert 'id="figure-performance"' in html and f"run {run.pk}" in html
    assert "Strategy review" in html  # the built-in review is in the approval history
    assert "readonly" in html and "Save as new version" not in html  # a viewer cannot edit


def test_admins_get_an_editable_config(admin: Client, strategy: Strategy) -> None:
    html = page(admin, f"/strategies/{strategy.pk}")
    assert "Save as new version" in html and 'data-url="/v1/strategies/' in html
    assert "readonly" not in html.split('id="config-yaml"')[1].split(">")[0]


def test_pending_approvals_show_decide_buttons_to_admins_only(
    admin: Client, viewer: Client, db: None
) -> None:
    version, _ = strategy_version_ensure(config=sma_config(name="fresh_sma"), source="file")
    requester = user_with_role("rita", "operator")
    approval = approval_request(
        strategy=version.strategy, kind=ApprovalKind.STRATEGY_REVIEW, user=requester
    )
    url = f"/strategies/{version.strategy_id}"
    decide = f'data-decide="/v1/controls/approvals/{approval.pk}/decide"'
    assert decide in page(admin, url)
    assert decide not in page(viewer, url)
    assert decide in page(admin, "/settings") and decide not in page(viewer, "/settings")


def test_an_invalid_config_is_refused_with_each_bad_field_named(
    admin: Client, strategy: Strategy
) -> None:
    text = page(admin, f"/strategies/{strategy.pk}").split('id="config-yaml"')[1]
    yaml_text = text.split(">", 1)[1].split("</textarea>")[0]
    bad = yaml_text.replace("fast: 10", "fast: -3").replace("timeframe: 1Day", "timeframe: 2Days")
    assert bad != yaml_text

    response = admin.post(f"/strategies/{strategy.pk}", {"config_yaml": bad})

    assert response.status_code == 422
    html = response.content.decode()
    problems = html.split('data-problems aria-live="polite">')[1].split("</ul>")[0]
    assert "params.fast" in problems and "timeframe" in problems
    assert "fast: -3" in html  # the operator's text stays in the editor
    assert StrategyVersion.objects.filter(strategy=strategy).count() == 1  # nothing stored


def test_broken_yaml_is_named_too(admin: Client, strategy: Strategy) -> None:
    response = admin.post(f"/strategies/{strategy.pk}", {"config_yaml": "name: [unclosed"})
    assert response.status_code == 422
    assert "not valid YAML at line" in response.content.decode()


def test_a_valid_change_is_stored_as_a_new_version(admin: Client, strategy: Strategy) -> None:
    page_html = page(admin, f"/strategies/{strategy.pk}")
    yaml_text = page_html.split('id="config-yaml"')[1].split(">", 1)[1].split("</textarea>")[0]
    changed = yaml_text.replace("fast: 10", "fast: 12")

    response = admin.post(f"/strategies/{strategy.pk}", {"config_yaml": changed}, follow=True)

    assert response.status_code == 200 and "Saved as version 2." in response.content.decode()
    strategy.refresh_from_db()
    assert strategy.current_version is not None and strategy.current_version.number == 2
    assert strategy.current_version.config["params"]["fast"] == 12


def test_only_admins_may_post_a_config(operator: Client, strategy: Strategy) -> None:
    assert operator.post(f"/strategies/{strategy.pk}", {"config_yaml": "x: 1"}).status_code == 403


def test_a_missing_strategy_is_404(viewer: Client) -> None:
    assert viewer.get("/strategies/999999").status_code == 404
