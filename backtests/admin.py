"""Admin: start a backtest from a form, watch it, cancel or re-run it, read its results."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from backtests import services, walkforward_services
from backtests.models import (
    BacktestRun,
    BacktestTrade,
    EvaluationSegment,
    JobRun,
    WalkForwardRun,
    WalkForwardWindow,
)
from quant.backtest import BacktestConfig, EngineMode, FillAt
from quant.backtest.walkforward_plan import Objective, WalkForwardConfig, objective_value
from quant.backtest.walkforward_plan import WindowType as WalkForwardWindowType
from quant.errors import ApplicationError, ConflictError
from research.models import Strategy, StrategyVersion

TRADES_SHOWN = 200


class BacktestStartForm(forms.ModelForm):  # type: ignore[type-arg]
    """What a user picks to start a run; everything else comes from the strategy version."""

    strategy = forms.ModelChoiceField(
        queryset=Strategy.objects.filter(is_active=True, current_version__isnull=False)
    )
    start_day = forms.DateField(required=False, help_text="First day (empty: all data)")
    end_day = forms.DateField(required=False, help_text="Last day, inclusive (empty: all data)")
    initial_capital = forms.DecimalField(initial="100000", min_value=1, decimal_places=2)
    commission = forms.DecimalField(
        initial="1.00", min_value=0, decimal_places=4, help_text="Per fill, in dollars"
    )
    slippage_bps = forms.DecimalField(initial="10", min_value=0, max_value=9999)
    fill_at = forms.ChoiceField(choices=[(f.value, f.value) for f in FillAt], initial="close")
    max_volume_participation = forms.DecimalField(
        required=False,
        min_value=Decimal("0.000001"),
        max_value=1,
        help_text="Cap each fill at this share of the bar's volume, e.g. 0.1 (empty: no cap)",
    )
    volume_impact_bps = forms.DecimalField(
        required=False,
        initial="0",
        min_value=0,
        help_text="Extra slippage at 100% of a bar's volume",
    )
    mode = forms.ChoiceField(
        choices=[(m.value, m.value) for m in EngineMode], initial=EngineMode.EVENT.value
    )

    class Meta:
        model = BacktestRun
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start_day"), data.get("end_day")
        if start and end and start > end:
            raise forms.ValidationError("The first day is after the last day.")
        try:
            data["config"] = BacktestConfig(
                initial_capital=Decimal(data.get("initial_capital") or 0),
                commission_per_trade=Decimal(data.get("commission") or 0),
                slippage_bps=Decimal(data.get("slippage_bps") or 0),
                start_date=_moment(start),
                end_date=_moment(end, last=True),
                fill_at=FillAt(data.get("fill_at") or FillAt.CLOSE),
                max_volume_participation=data.get("max_volume_participation"),
                volume_impact_bps=Decimal(data.get("volume_impact_bps") or 0),
            )
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None
        return data


def _plain(value: Decimal) -> str:
    """A stored decimal without trailing zeros and never in exponent form (740, not 7.4E+2)."""
    return format(value.normalize(), "f")


def _moment(day: date | None, *, last: bool = False) -> datetime | None:
    if day is None:
        return None
    moment = datetime.combine(day, time(), tzinfo=UTC)
    return moment + timedelta(days=1, microseconds=-1) if last else moment


class RunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """What the backtest and walk-forward run admins share: a start form on "add" (the run is
    created and queued by its service, never a bare ModelForm save), read-only afterwards, a
    cancel action, the version, the report links and a metrics table."""

    start_form: type[forms.ModelForm]  # type: ignore[type-arg]
    report_url = ""  # the URL name of the run's report files
    noun = "run"

    def start(self, version: StrategyVersion, data: dict[str, Any], user: Any) -> JobRun:
        """Create and queue a run of ``version`` from the start form's cleaned data."""
        raise NotImplementedError

    def cancel_one(self, run: Any) -> str:
        """Cancel one run through its service; what happened, for the message."""
        raise NotImplementedError

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = self.start_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return list(self.start_form.base_fields) if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        strategy: Strategy = form.cleaned_data["strategy"]
        assert strategy.current_version is not None  # the form offers none without
        run = self.start(strategy.current_version, form.cleaned_data, request.user)
        obj.pk = run.pk
        obj.__dict__.update(run.__dict__)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the service stored everything

    @admin.action(description="Cancel the selected runs")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for run in queryset:
            try:
                done = self.cancel_one(run)
            except ConflictError as error:
                self.message_user(request, error.message, messages.WARNING)
            else:
                self.message_user(request, done, messages.SUCCESS)

    @admin.display(description="version")
    def version(self, run: Any) -> str:
        return f"v{run.strategy_version.number}"

    @admin.display(description="reports")
    def reports(self, run: Any) -> str:
        if not run.report_html:
            return "-"
        return format_html(
            '<a href="{}" target="_blank">HTML report</a> · <a href="{}">JSON report</a>',
            reverse(self.report_url, args=[run.pk, "html"]),
            reverse(self.report_url, args=[run.pk, "json"]),
        )


def metrics_table(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "-"
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", sorted(metrics.items()))
    return format_html("<table>{}</table>", rows)


@admin.register(BacktestRun)
class BacktestRunAdmin(RunAdmin):
    list_display = (
        "id",
        "strategy",
        "version",
        "status",
        "progress_pct",
        "symbol_list",
        "period",
        "final_equity",
        "total_trades",
        "created_at",
    )
    list_filter = ("status", "strategy", "engine_mode")
    list_select_related = ("strategy", "strategy_version")
    actions = ["rerun", "cancel"]
    readonly_fields = (
        "strategy",
        "strategy_version",
        "status",
        "progress_pct",
        "error_message",
        "engine_mode",
        "symbol_list",
        "timeframe",
        "start",
        "end",
        "data_start",
        "data_end",
        "bar_count",
        "final_equity",
        "total_trades",
        "metrics_table",
        "reports",
        "trades_table",
        "open_positions",
        "backtest_config",
        "strategy_config",
        "cancel_requested",
        "task_id",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )

    start_form = BacktestStartForm
    report_url = "backtest-report"

    def start(self, version: StrategyVersion, data: dict[str, Any], user: Any) -> BacktestRun:
        return services.backtest_run_submit(
            run=services.backtest_run_create(
                strategy_version=version,
                config=data["config"],
                mode=data["mode"],
                requested_by=user,
            )
        )

    def cancel_one(self, run: BacktestRun) -> str:
        services.backtest_run_cancel(run=run)
        return f"Run {run.pk} {'cancelled' if run.status == 'cancelled' else 'asked to stop'}."

    @admin.action(description="Re-run the selected backtests")
    def rerun(self, request: HttpRequest, queryset: QuerySet[BacktestRun]) -> None:
        with transaction.atomic():
            new = [services.backtest_run_rerun(run=r, requested_by=request.user) for r in queryset]  # type: ignore[arg-type]
        ids = ", ".join(str(r.pk) for r in new)
        self.message_user(request, f"Queued {len(new)} run(s): {ids}", messages.SUCCESS)

    @admin.display(description="progress")
    def progress_pct(self, run: BacktestRun) -> str:
        return f"{run.progress * 100:.0f}%"

    @admin.display(description="symbols")
    def symbol_list(self, run: BacktestRun) -> str:
        return ", ".join(run.symbols)

    @admin.display(description="period")
    def period(self, run: BacktestRun) -> str:
        first, last = run.data_start or run.start, run.data_end or run.end
        if not first and not last:
            return "all data"
        return f"{first:%Y-%m-%d} .. {last:%Y-%m-%d}" if first and last else str(first or last)

    @admin.display(description="metrics")
    def metrics_table(self, run: BacktestRun) -> str:
        return metrics_table(run.metrics)

    @admin.display(description="trades")
    def trades_table(self, run: BacktestRun) -> str:
        trades = list(BacktestTrade.objects.filter(run=run).order_by("seq")[:TRADES_SHOWN])
        if not trades:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    t.seq,
                    t.symbol,
                    t.side,
                    _plain(t.quantity),
                    f"{t.entry_time:%Y-%m-%d %H:%M}",
                    _plain(t.entry_price),
                    f"{t.exit_time:%Y-%m-%d %H:%M}",
                    _plain(t.exit_price),
                    t.pnl,
                )
                for t in trades
            ),
        )
        more = (run.total_trades or 0) - len(trades)
        note = format_html("<p>and {} more in the reports</p>", more) if more > 0 else ""
        return format_html(
            "<table><tr><th>#</th><th>symbol</th><th>side</th><th>qty</th><th>entry</th>"
            "<th>price</th><th>exit</th><th>price</th><th>P&amp;L</th></tr>{}</table>{}",
            rows,
            note,
        )


# --- walk-forward runs -----------------------------------------------------------------


class WalkForwardStartForm(forms.ModelForm):  # type: ignore[type-arg]
    """Windows, grid and costs of a walk-forward run of a strategy's current version."""

    strategy = forms.ModelChoiceField(
        queryset=Strategy.objects.filter(is_active=True, current_version__isnull=False)
    )
    in_sample_days = forms.IntegerField(min_value=1, initial=252, help_text="Bars")
    out_of_sample_days = forms.IntegerField(min_value=1, initial=63, help_text="Bars")
    step_days = forms.IntegerField(min_value=1, initial=63, help_text="Bars")
    window_type = forms.ChoiceField(
        choices=[(t.value, t.value) for t in WalkForwardWindowType], initial="rolling"
    )
    grid = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One parameter a line: name=value1,value2,... (empty: the config's params)",
    )
    objective = forms.ChoiceField(choices=[(o.value, o.value) for o in Objective])
    min_trades = forms.IntegerField(min_value=0, initial=1, help_text="In sample, per window")
    start_day = forms.DateField(required=False, help_text="First day (empty: all data)")
    end_day = forms.DateField(required=False, help_text="Last day, inclusive (empty: all data)")
    initial_capital = forms.DecimalField(initial="100000", min_value=1, decimal_places=2)
    commission = forms.DecimalField(initial="1.00", min_value=0, decimal_places=4)
    slippage_bps = forms.DecimalField(initial="10", min_value=0, max_value=9999)

    class Meta:
        model = WalkForwardRun
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        strategy: Strategy | None = data.get("strategy")
        if self.errors or strategy is None or strategy.current_version is None:
            return data
        try:
            lines = [line for line in str(data.get("grid") or "").splitlines() if line.strip()]
            data["wf_config"] = WalkForwardConfig(
                in_sample_days=data["in_sample_days"],
                out_of_sample_days=data["out_of_sample_days"],
                step_days=data["step_days"],
                window_type=WalkForwardWindowType(data["window_type"]),
                parameter_grid=walkforward_services.grid_parse(lines),
                objective=Objective(data["objective"]),
                min_trades_required=data["min_trades"],
            )
            data["config"] = BacktestConfig(
                initial_capital=Decimal(data["initial_capital"]),
                commission_per_trade=Decimal(data["commission"]),
                slippage_bps=Decimal(data["slippage_bps"]),
                start_date=_moment(data.get("start_day")),
                end_date=_moment(data.get("end_day"), last=True),
            )
            walkforward_services.walk_forward_check(
                strategy_version=strategy.current_version,
                wf_config=data["wf_config"],
                backtest_config=data["config"],
            )
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None
        return data


class WalkForwardWindowInline(admin.TabularInline):  # type: ignore[type-arg]
    model = WalkForwardWindow
    extra = 0
    can_delete = False
    fields = (
        "index",
        "in_sample",
        "out_of_sample",
        "best_params",
        "is_objective",
        "in_sample_trades",
        "oos_objective",
        "out_of_sample_trades",
        "grid_points",
        "flag",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[WalkForwardWindow]:
        # while the run is in flight its points are evaluation rows; afterwards, grid_results
        in_sample = Q(evaluations__segment=EvaluationSegment.IN_SAMPLE)
        return (
            super()
            .get_queryset(request)
            .select_related("run")
            .annotate(points_stored=Count("evaluations", filter=in_sample))
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="In sample")
    def in_sample(self, w: WalkForwardWindow) -> str:
        return f"{w.in_sample_start:%Y-%m-%d} .. {w.in_sample_end:%Y-%m-%d}"

    @admin.display(description="Out-of-sample")
    def out_of_sample(self, w: WalkForwardWindow) -> str:
        return f"{w.out_of_sample_start:%Y-%m-%d} .. {w.out_of_sample_end:%Y-%m-%d}"

    @admin.display(description="IS objective")
    def is_objective(self, w: WalkForwardWindow) -> str:
        return _objective(w.run, w.in_sample_metrics)

    @admin.display(description="OOS objective")
    def oos_objective(self, w: WalkForwardWindow) -> str:
        return _objective(w.run, w.out_of_sample_metrics)

    @admin.display(description="grid points done")
    def grid_points(self, w: WalkForwardWindow) -> int:
        return max(getattr(w, "points_stored", 0), len(w.grid_results))


def _objective(run: WalkForwardRun, metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "-"
    value = objective_value(metrics, Objective(run.wf_config.get("objective", "sharpe")))
    return "-" if value is None else f"{value:.4g}"


@admin.register(WalkForwardRun)
class WalkForwardRunAdmin(RunAdmin):
    list_display = ("id", "strategy", "version", "status", "progress_pct", "windows", "created_at")
    list_filter = ("status", "strategy")
    list_select_related = ("strategy", "strategy_version")
    actions = ["cancel"]
    inlines = [WalkForwardWindowInline]
    readonly_fields = (
        "strategy",
        "strategy_version",
        "status",
        "progress_pct",
        "error_message",
        "reports",
        "verdict",
        "aggregated_metrics",
        "wf_config",
        "backtest_config",
        "symbols",
        "timeframe",
        "cancel_requested",
        "task_id",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )

    start_form = WalkForwardStartForm
    report_url = "walkforward-report"

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else []

    def start(self, version: StrategyVersion, data: dict[str, Any], user: Any) -> WalkForwardRun:
        run = walkforward_services.walk_forward_run_create(
            strategy_version=version,
            wf_config=data["wf_config"],
            backtest_config=data["config"],
            requested_by=user,
        )
        return walkforward_services.walk_forward_run_submit(run=run)

    def cancel_one(self, run: WalkForwardRun) -> str:
        walkforward_services.walk_forward_run_cancel(run=run)
        return f"Walk-forward run {run.pk} cancelled."

    @admin.display(description="progress")
    def progress_pct(self, run: WalkForwardRun) -> str:
        return f"{run.progress * 100:.0f}% ({run.tasks_done} of {run.tasks_total} tasks)"

    @admin.display(description="windows")
    def windows(self, run: WalkForwardRun) -> str:
        config = run.wf_config
        return (
            f"{config.get('window_type')} {config.get('in_sample_days')}/"
            f"{config.get('out_of_sample_days')}/{config.get('step_days')}"
        )

    @admin.display(description="verdict")
    def verdict(self, run: WalkForwardRun) -> str:
        return str(((run.result or {}).get("overfitting") or {}).get("verdict") or "-")

    @admin.display(description="out-of-sample metrics")
    def aggregated_metrics(self, run: WalkForwardRun) -> str:
        return metrics_table((run.result or {}).get("aggregated_metrics"))
