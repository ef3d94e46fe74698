"""Reviews and promotions belong to a strategy version: a config change never trades unapproved.

A new version (from the API, the dashboard editor or a YAML file) is unreviewed; requests
still pending for an older version are withdrawn; a strategy in paper or live returns to
research. Start-ups never lose an edit: a file makes a version only when it changed since it
was last loaded, and a file that changed after an edit is reported, not loaded.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from backtests.models import BacktestRun
from backtests.services import backtest_run_create
from quant.backtest import BacktestConfig
from quant.errors import ConflictError, GateClosedError
from research.models import ApprovalRequest, ModeChange, Strategy, StrategyVersion
from research.services import strategies_load_directory, strategy_review_builtin
from risk import approvals
from tests.support.api import PASSWORD, client_for, make_user
from tests.support.dashboard import signed_in
from tests.trading.operator_support import InstantBroker, daily_prices, trading_strategy
from trading.brokers import broker_override
from trading.models import Order
from trading.services.reconcile import forget_process_reconciliation

pytestmark = pytest.mark.django_db

SHIPPED = Path(settings.BASE_DIR) / "configs" / "strategies" / "sma_crossover.yaml"


@pytest.fixture
def paper_broker() -> Iterator[InstantBroker]:
    broker = InstantBroker()
    forget_process_reconciliation()
    broker_override("paper", broker)
    yield broker
    broker_override("paper", None)
    forget_process_reconciliation()


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("admin", "ada")


def config_of(strategy: Strategy, **params: Any) -> dict[str, Any]:
    assert strategy.current_version is not None
    config = dict(strategy.current_version.config)
    config["params"] = {**config["params"], **params}
    return config


def assert_back_in_research(strategy: Strategy, *, number: int, was: str) -> None:
    strategy.refresh_from_db()
    assert strategy.mode == "research"
    assert strategy.current_version is not None and strategy.current_version.number == number
    assert not strategy.is_reviewed
    change = ModeChange.objects.filter(strategy=strategy).latest("at")
    assert (change.from_mode, change.to_mode, change.changed_by) == (was, "research", None)
    assert change.strategy_version == strategy.current_version
    assert f"version {number} stored from" in change.reason


def order_via_api(strategy: Strategy) -> Any:
    trader = User.objects.filter(username="trader").first() or make_user("operator", "trader")
    client = client_for(trader)
    payload = {"strategy_id": strategy.pk, "symbol": "SPY", "side": "buy", "quantity": "1"}
    return client.post("/v1/orders", payload, content_type="application/json")


# --- a new version through each interface ------------------------------------------------


def test_a_patched_config_returns_a_paper_strategy_to_research(
    admin_user: User, paper_broker: InstantBroker
) -> None:
    daily_prices("SPY")
    strategy = trading_strategy("edited", "paper")
    assert order_via_api(strategy).status_code == 201

    response = client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy, fast=4)},
        content_type="application/json",
    )

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["mode"], data["current_version"], data["reviewed"]) == ("research", 2, False)
    assert data["reviewed_version"] == 1
    assert_back_in_research(strategy, number=2, was="paper")
    refused = order_via_api(strategy)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate_closed"
    assert Order.objects.count() == 1


def test_the_dashboard_editor_does_the_same_and_says_so(admin_user: User) -> None:
    strategy = trading_strategy("desk", "live")
    text = yaml.safe_dump(config_of(strategy, slow=9), sort_keys=False)

    response = signed_in(admin_user).post(
        f"/strategies/{strategy.pk}", {"config_yaml": text}, follow=True
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Saved as version 2." in page
    assert "left live trading and is back in research mode" in page
    assert_back_in_research(strategy, number=2, was="live")


def test_a_changed_yaml_file_does_the_same(tmp_path: Path) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(SHIPPED, folder)
    strategies_load_directory(path=folder)
    strategy = Strategy.objects.get(name="sma_crossover")
    strategy_review_builtin(strategy=strategy, note="test")
    Strategy.objects.filter(pk=strategy.pk).update(mode="paper")
    data = yaml.safe_load((folder / "sma_crossover.yaml").read_text())
    data["params"]["fast"] = data["params"]["fast"] + 1
    (folder / "sma_crossover.yaml").write_text(yaml.safe_dump(data))

    call_command("load_strategies", "--path", str(folder), stdout=StringIO())

    assert_back_in_research(strategy, number=2, was="paper")


def test_the_same_config_again_changes_nothing(admin_user: User) -> None:
    strategy = trading_strategy("same", "paper")

    client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy), "is_active": False},
        content_type="application/json",
    )

    strategy.refresh_from_db()
    assert strategy.mode == "paper" and strategy.is_reviewed and not strategy.is_active
    assert not ModeChange.objects.exists()


# --- reviews and requests belong to a version ----------------------------------------------


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", password=PASSWORD)


def test_a_review_belongs_to_its_version(admin_user: User, alice: User, bob: User) -> None:
    strategy = trading_strategy("reviewed_once", "research")
    client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy, fast=5)},
        content_type="application/json",
    )
    strategy.refresh_from_db()
    version = strategy.current_version
    assert version is not None

    with pytest.raises(GateClosedError, match="not been reviewed in its current version"):
        backtest_run_create(strategy_version=version, config=BacktestConfig())
    with pytest.raises(GateClosedError, match="version 2 is not reviewed"):
        approvals.approval_request(strategy=strategy, kind="promote_paper", user=alice)

    review = approvals.approval_request(strategy=strategy, kind="strategy_review", user=alice)
    approvals.approval_decide(approval=review, user=bob, approve=True)

    strategy.refresh_from_db()
    assert strategy.is_reviewed and strategy.reviewed_version == version
    assert backtest_run_create(strategy_version=version, config=BacktestConfig())


def test_a_request_for_an_older_version_is_withdrawn(
    admin_user: User, alice: User, bob: User
) -> None:
    strategy = trading_strategy("pending_live", "paper")
    request = approvals.approval_request(strategy=strategy, kind="promote_live", user=alice)

    client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy, fast=6)},
        content_type="application/json",
    )

    request.refresh_from_db()
    assert request.status == "withdrawn"
    assert request.decision_note == "withdrawn: version 2 was stored (api)"
    with pytest.raises(ConflictError, match="already withdrawn"):
        approvals.approval_decide(approval=request, user=bob, approve=True)
    strategy.refresh_from_db()
    assert strategy.mode == "research"


def test_a_request_written_for_another_version_cannot_be_applied(alice: User, bob: User) -> None:
    strategy = trading_strategy("stale", "research")
    Strategy.objects.filter(pk=strategy.pk).update(reviewed_version=None)
    request = approvals.approval_request(strategy=strategy, kind="strategy_review", user=alice)
    older = StrategyVersion.objects.create(
        strategy=strategy,
        number=99,
        config=strategy.current_version.config if strategy.current_version else {},
        content_hash="x" * 64,
        interface_version=1,
        source="admin",
    )
    ApprovalRequest.objects.filter(pk=request.pk).update(strategy_version=older)

    with pytest.raises(ConflictError, match="another version than the strategy's current one"):
        approvals.approval_decide(approval=request, user=bob, approve=True)
    request.refresh_from_db()
    assert request.status == "pending"


# --- start-ups never lose an edit --------------------------------------------------------


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[Path, Strategy]:
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(SHIPPED, folder)
    strategies_load_directory(path=folder)
    return folder, Strategy.objects.get(name="sma_crossover")


def edit_file(folder: Path, **params: Any) -> None:
    path = folder / "sma_crossover.yaml"
    data = yaml.safe_load(path.read_text())
    data["params"].update(params)
    path.write_text(yaml.safe_dump(data))


def test_a_restart_keeps_an_edit_made_through_the_api(
    loaded: tuple[Path, Strategy], admin_user: User
) -> None:
    folder, strategy = loaded
    client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy, fast=7)},
        content_type="application/json",
    )

    report = strategies_load_directory(path=folder)  # what every `make run` does

    (result,) = report.results
    strategy.refresh_from_db()
    assert strategy.current_version is not None
    assert (strategy.current_version.number, strategy.current_version.source) == (2, "api")
    assert strategy.current_version.config["params"]["fast"] == 7
    assert not result.created and result.kept == "api" and not result.conflict
    assert "file unchanged since it was last loaded; version 2 (edited through the api) kept" in (
        result.summary
    )


def test_a_file_changed_after_an_edit_is_reported_not_loaded(
    loaded: tuple[Path, Strategy], admin_user: User
) -> None:
    folder, strategy = loaded
    client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy, fast=7)},
        content_type="application/json",
    )
    edit_file(folder, slow=40)

    err = StringIO()
    with pytest.raises(CommandError, match="1 file\\(s\\) not loaded"):
        call_command("load_strategies", "--path", str(folder), stdout=StringIO(), stderr=err)

    assert "changed since it was last loaded, and version 2 was stored through the api" in (
        err.getvalue()
    )
    assert StrategyVersion.objects.filter(strategy=strategy).count() == 2

    call_command("load_strategies", "--path", str(folder), "--force", stdout=StringIO())

    strategy.refresh_from_db()
    assert strategy.current_version is not None
    assert (strategy.current_version.number, strategy.current_version.source) == (3, "file")
    assert strategy.current_version.config["params"]["slow"] == 40
    assert strategies_load_directory(path=folder).created == 0  # and it stays put


def test_a_changed_file_without_an_edit_is_a_new_version(loaded: tuple[Path, Strategy]) -> None:
    folder, _ = loaded
    edit_file(folder, slow=41)

    (result,) = strategies_load_directory(path=folder).results

    assert result.created and result.version == 2 and not result.conflict


def test_the_demo_seed_never_reviews_an_edit(
    loaded: tuple[Path, Strategy], admin_user: User
) -> None:
    from backtests import demo

    folder, strategy = loaded
    client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy, fast=8)},
        content_type="application/json",
    )

    report = strategies_load_directory(path=folder)
    demo.builtin_reviews(report)

    strategy.refresh_from_db()
    assert not strategy.is_reviewed
    assert not ApprovalRequest.objects.filter(strategy=strategy, status="approved").exists()


def test_run_backtest_save_follows_the_same_rule(
    loaded: tuple[Path, Strategy], admin_user: User
) -> None:
    """``run_backtest --save`` stores its file's config as a version by the loader's rule: it
    never replaces a newer edit (the run is refused before anything is stored)."""
    folder, strategy = loaded
    client_for(admin_user).patch(
        f"/v1/strategies/{strategy.pk}",
        {"config": config_of(strategy, fast=9)},
        content_type="application/json",
    )
    config = str(folder / "sma_crossover.yaml")

    with pytest.raises(CommandError, match=r"version 2 \(edited through the api\) kept"):
        call_command("run_backtest", "--config", config, "--save", stdout=StringIO())
    edit_file(folder, slow=42)
    with pytest.raises(CommandError, match="changed since it was last loaded"):
        call_command("run_backtest", "--config", config, "--save", stdout=StringIO())

    assert StrategyVersion.objects.filter(strategy=strategy).count() == 2
    assert not BacktestRun.objects.exists()
