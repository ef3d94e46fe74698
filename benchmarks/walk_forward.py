"""Walk-forward fan-out: 20 rolling windows x 24 grid points over Celery, 1 worker then 2.

    .venv/bin/python benchmarks/walk_forward.py                 # make bench-walk-forward
    .venv/bin/python benchmarks/walk_forward.py --repeat 1 --windows 4 --years 4   # quick check
    .venv/bin/python benchmarks/walk_forward.py --json var/walk_forward.json

Set-up (not timed)
------------------
A PostgreSQL database of its own (``quant_bench_walk_forward`` by default, created when
missing, migrated, its bars and walk-forward runs emptied) holds ``--years`` years of seeded
synthetic daily bars of SPY (the synthetic provider, exchange sessions only), and the shipped
``sma_crossover`` config as a reviewed strategy version. Redis database 14 (``--redis-url``,
flushed) is the Celery broker. Windows are rolling, 504 in-sample bars (two years) and
out-of-sample = step sized so that exactly ``--windows`` windows fit the bars. The grid is
``fast`` 5/10/15/20 x ``slow`` 30/50/70/90/110/130 = 24 points: 20 x 24 = 480 in-sample
backtests plus one out-of-sample backtest per window.

Timed
-----
1. **baselines in this process**: one ``run_backtest`` of a grid point over one window's
   in-sample bars (the engine call a task makes, median of ``--baseline-repeat``), and the whole
   walk-forward with ``WalkForwardEngine`` and its in-process ``LocalExecutor``.
2. **over Celery** with N = 1, then 2 worker processes (``celery -A config worker --pool=solo``,
   started and ready before the clock starts): from sending the run's start message to the run
   being SUCCEEDED (start task, every evaluation stored in the window rows, gather, the JSON and
   HTML reports written), best of ``--repeat`` runs per N. Each worker loads the run's bars on
   its first task, inside the timing, as in production.

Printed: a Markdown table (wall time, backtests/s, time per backtest as worker time per
backtest = wall x N / backtests, its ratio to the single ``run_backtest``, speedup over one
worker; goal >= 1.7x with two workers on the 2-core machine), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/quant_bench_walk_forward"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
GRID = {"fast": [5, 10, 15, 20], "slow": [30, 50, 70, 90, 110, 130]}
IN_SAMPLE = 504
SPEEDUP_GOAL = 1.7
SYMBOL = "SPY"


def set_up(years: int) -> Any:
    """Bars and a reviewed sma_crossover version in an emptied database; returns the version."""
    from backtests.models import WalkForwardRun
    from marketdata.domain import Timeframe
    from marketdata.models import Bar
    from marketdata.providers.synthetic import SyntheticProvider
    from marketdata.services import bars_ingest
    from quant.clock import ManualClock
    from quant.strategies.config import config_load
    from research.services import strategy_review_builtin, strategy_version_ensure

    WalkForwardRun.objects.all().delete()
    Bar.objects.all().delete()
    start = datetime(2015, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=round(365.25 * years))
    provider = SyntheticProvider(seed=7, clock=ManualClock(end + timedelta(days=2)))
    bars = list(provider.iter_bars(SYMBOL, start, end, Timeframe.DAY_1))
    bars_ingest(symbol=SYMBOL, timeframe=Timeframe.DAY_1, bars=bars, source="benchmark")
    config = config_load(str(ROOT / "configs" / "strategies" / "sma_crossover.yaml"))
    config = config.model_copy(update={"symbols": (SYMBOL,)})
    version, _ = strategy_version_ensure(config=config, source="file")
    strategy_review_builtin(strategy=version.strategy, note="benchmark")
    return version


def wf_config_for(bars: int, windows: int) -> Any:
    from quant.backtest.walkforward import WalkForwardConfig, plan_windows
    from quant.backtest.walkforward_plan import Objective

    step = (bars - IN_SAMPLE) // windows  # floor((bars - IN_SAMPLE) / step) windows fit
    if step < 20:
        raise SystemExit(f"{bars} bars are too few for {windows} windows of {IN_SAMPLE} bars")
    config = WalkForwardConfig(
        in_sample_days=IN_SAMPLE,
        out_of_sample_days=step,
        step_days=step,
        parameter_grid=GRID,
        objective=Objective.SHARPE,
        min_trades_required=1,
    )
    assert len(plan_windows(bars, config)) == windows, "window sizing is off"
    return config


def baselines(version: Any, wf_config: Any, repeat: int) -> dict[str, float]:
    from backtests.services import market_data_load
    from quant.backtest import BacktestConfig, BacktestEngine
    from quant.backtest.walkforward import LocalExecutor, WalkForwardEngine
    from quant.backtest.walkforward_eval import slice_bars

    config = version.as_config()
    data = market_data_load(
        symbols=config.symbols, timeframe=config.timeframe, start=None, end=None
    )
    strategy_config = config.model_copy(
        update={"params": {**config.params, "fast": 10, "slow": 50}}
    )
    window = slice_bars(data, 0, IN_SAMPLE)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        BacktestEngine().run(strategy_config.build(), window, BacktestConfig())
        times.append(time.perf_counter() - began)
    began = time.perf_counter()
    WalkForwardEngine().run(config, data, wf_config, BacktestConfig(), executor=LocalExecutor())
    local = time.perf_counter() - began
    return {"single_backtest_s": statistics.median(times), "local_s": local, "bars": len(data)}


def run_over_celery(
    version: Any, wf_config: Any, workers: int, database_url: str, redis_url: str, repeat: int
) -> dict[str, Any]:
    import redis

    from backtests import walkforward_services
    from backtests.models import RunStatus
    from backtests.walkforward_tasks import wf_start
    from config.celery import app
    from quant.backtest import BacktestConfig
    from tests.support.celery_workers import CeleryWorkers

    redis.Redis.from_url(redis_url).flushdb()
    walls = []
    with CeleryWorkers(
        database_url=database_url,
        broker_url=redis_url,
        count=workers,
        name=f"bench{workers}w",
        env={"LOG_LEVEL": "WARNING", "DEBUG": "false", "SECRET_KEY": os.environ["SECRET_KEY"]},
    ) as started:
        for _ in range(repeat):
            run = walkforward_services.walk_forward_run_create(
                strategy_version=version, wf_config=wf_config, backtest_config=BacktestConfig()
            )
            began = time.perf_counter()
            with app.connection_for_write(redis_url) as broker:
                wf_start.apply_async(args=[run.pk], connection=broker)
            run = walkforward_services.walk_forward_run_wait(
                run=run, poll=0.1, on_progress=lambda _: started.check_alive()
            )
            walls.append(time.perf_counter() - began)
            if run.status != RunStatus.SUCCEEDED:
                raise SystemExit(f"run {run.pk} {run.status}: {run.error_message}")
            ran_by = {g["worker"] for w in run.windows.all() for g in w.grid_results}
            if len(ran_by) != workers:
                raise SystemExit(f"{workers} workers started but {sorted(ran_by)} took tasks")
    return {"workers": workers, "wall_s": min(walls), "walls_s": walls, "run_id": run.pk}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--years", type=int, default=10, help="years of daily bars")
    parser.add_argument("--windows", type=int, default=20, help="rolling windows")
    parser.add_argument("--repeat", type=int, default=2, help="Celery runs per worker count")
    parser.add_argument("--baseline-repeat", type=int, default=21)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        raise SystemExit("the benchmark measures PostgreSQL: pass a postgres:// --database-url")
    if min(args.years, args.windows, args.repeat, args.baseline_repeat) < 1:
        raise SystemExit("--years, --windows and the repeats must be at least 1")

    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    from tests.support.postgres import benchmark_django_setup

    server_version = benchmark_django_setup(args.database_url, production=True)
    version = set_up(args.years)
    from backtests.services import market_data_load

    n_bars = len(market_data_load(symbols=(SYMBOL,), timeframe="1Day", start=None, end=None))
    wf_config = wf_config_for(n_bars, args.windows)
    points = len(GRID["fast"]) * len(GRID["slow"])
    backtests = args.windows * points + args.windows
    print(
        f"PostgreSQL {server_version}, Redis broker {args.redis_url}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores; {n_bars:,} daily bars "
        f"({args.years} years), {args.windows} rolling windows of {IN_SAMPLE} in-sample + "
        f"{wf_config.out_of_sample_days} out-of-sample bars, {points} grid points: "
        f"{backtests} backtests per run; best of {args.repeat} per worker count"
    )
    base = baselines(version, wf_config, args.baseline_repeat)
    single = base["single_backtest_s"]
    rows = [
        run_over_celery(version, wf_config, n, args.database_url, args.redis_url, args.repeat)
        for n in (1, 2)
    ]
    one = rows[0]["wall_s"]
    print()
    print(
        "| executor | wall s | backtests/s | worker ms per backtest | vs one run_backtest "
        "| speedup |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| one `run_backtest` ({IN_SAMPLE} bars, in process) | {single:.4f} | "
        f"{1 / single:,.0f} | {single * 1000:.2f} | 1.00x | |"
    )
    print(
        f"| in process (`LocalExecutor`) | {base['local_s']:.2f} | "
        f"{backtests / base['local_s']:,.0f} | {base['local_s'] / backtests * 1000:.2f} | "
        f"{base['local_s'] / backtests / single:.2f}x | |"
    )
    for row in rows:
        per = row["wall_s"] * row["workers"] / backtests
        row.update(
            backtests_per_s=backtests / row["wall_s"],
            worker_ms_per_backtest=per * 1000,
            vs_single=per / single,
            speedup=one / row["wall_s"],
        )
        print(
            f"| Celery, {row['workers']} worker{'s' if row['workers'] > 1 else ''} | "
            f"{row['wall_s']:.2f} | {row['backtests_per_s']:,.0f} | "
            f"{row['worker_ms_per_backtest']:.2f} | {row['vs_single']:.2f}x | "
            f"{row['speedup']:.2f}x |"
        )
    speedup = rows[1]["speedup"]
    verdict = "met" if speedup >= SPEEDUP_GOAL else "NOT met"
    print(f"\nspeedup with 2 workers {speedup:.2f}x (goal >= {SPEEDUP_GOAL}x): {verdict}")
    figures = {
        "bars": n_bars,
        "windows": args.windows,
        "grid_points": points,
        "backtests": backtests,
        "single_backtest_s": single,
        "local_s": base["local_s"],
        "celery": rows,
        "speedup_2_workers": speedup,
        "goal": SPEEDUP_GOAL,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
