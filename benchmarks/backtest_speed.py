"""Backtest speed: SMA 10/30 crossover, both engine paths against backtesting.py (and vectorbt).

    .venv/bin/python benchmarks/backtest_speed.py                       # 10k, 100k and 1M bars
    .venv/bin/python benchmarks/backtest_speed.py --sizes 10000         # a quick check
    .venv/bin/python benchmarks/backtest_speed.py --sizes 2000 --skip-peers

Peers live in their own directory, never in the project's dependencies
-------------------------------------------------------------------------
backtesting.py (with bokeh) and vectorbt (with numba, matplotlib, ipython, ...) are installed
into ``benchmarks/.venv-peers`` (git-ignored), next to the project's virtualenv rather than in
it, and this script appends that directory to ``sys.path`` in the child processes that run them:

    .venv/bin/python -m pip install --no-deps --target benchmarks/.venv-peers \\
        -r benchmarks/requirements.txt

``benchmarks/requirements.txt`` pins exactly the packages the peers need *beyond* the project's
own lock (numpy, pandas, scipy, ... come from ``.venv``, so the peers run on the same numpy and
pandas as our engine), which is why ``--no-deps`` is right there. To refresh it, resolve the
peers against the lock without installing anything, then pin everything the report lists:

    .venv/bin/python -m pip install --dry-run --report /tmp/peers.json \\
        -c requirements.lock backtesting vectorbt

Without the directory (or with ``--skip-peers``) only our two paths run.

What is measured
----------------
Seeded synthetic daily bars (``quant.backtest.sample.random_walk_bars``, seed 7). Every engine
and size runs in a child process of its own (this script with ``--child``), so each peak memory
figure (``ru_maxrss`` of that child: interpreter, imports, the bars and the run) is that run's
own. Each child warms up on 2,000 other bars first (imports, numba compilation), then times only
the run itself, best of 3 to 5 repeats:

- ours: ``BacktestEngine().run(strategy, data, config, mode=...)`` with a freshly built
  strategy per run; ``MarketData.from_frames`` (validation and alignment) is not timed;
- backtesting.py: ``Backtest(...).run()`` (indicators, the bar loop, its statistics);
  building ``Backtest`` (its data checks) is not timed;
- vectorbt: the same SMA arrays and crossovers, ``Portfolio.from_signals`` and the trade
  record array (its statistics are lazy and not computed).

One set of trading rules, three engines
---------------------------------------
Long only. Buy at the close of the bar where SMA(10) crosses above SMA(30) (``fast[t-1] <
slow[t-1]`` and ``fast[t] > slow[t]``; both SMAs from the running cumulative sum of
``quant.strategies.indicators.sma``, so every engine sees bit-identical averages), sell the
whole position at the close of the bar where it crosses below. Fills pay 10 bps of slippage
(buys at ``close * 1.001``, sells at ``close * 0.999``) and $1 commission each; an entry buys
``floor((cash - 1) / fill_price)`` shares (our ``percent: 100`` sizing). How the peers are set
to the same rules, from their source:

- backtesting.py applies ``spread`` on entry only ("existing trades are closed at unadjusted
  price") and its all-in ``buy()`` sizes with the commission spread over the shares
  (``int(margin_available * size // (price * (1 + spread) + commission / size))``), so neither
  matches our rules. Instead: ``spread=0``, ``commission=(1.0, 0.001)`` ($1 plus 0.1% of the
  order's value, charged at entry *and* exit: cash moves exactly as with our slipped prices),
  ``trade_on_close=True`` (an order placed in ``next()`` fills at that bar's close), and
  ``buy(size=floor((equity - 1) / (close * 1.001)))`` with whole shares. Its recorded trade
  prices are raw closes, so they are compared as ``EntryPrice * 1.001`` and ``ExitPrice *
  0.999``; its PnL already includes both commissions. An order placed on the final bar would be
  filled on the next iteration, which never comes: it is completed by the same rule.
- vectorbt: ``Portfolio.from_signals(close, entries, exits, init_cash=100000, fixed_fees=1,
  slippage=0.001, size=inf, size_granularity=1)``, which buys ``floor((cash - 1) / (close *
  1.001))``. It gets the close series with a tz-naive UTC index (the same instants): with a
  tz-aware index its shape check converts the index to a million ``Timestamp`` objects, which
  alone costs more than a second at 1M bars.

Trades (times, sizes, prices within 1e-6 relative, PnL within a cent) are compared between our
two paths and against backtesting.py (and vectorbt); the script exits 1 when they differ.
The table is Markdown, ready for the README; the last line is JSON for scripts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS = ROOT / "benchmarks" / ".venv-peers"
INSTALL = (
    ".venv/bin/python -m pip install --no-deps --target benchmarks/.venv-peers "
    "-r benchmarks/requirements.txt"
)

SEED = 7
FAST, SLOW = 10, 30
CASH = 100_000.0
COMMISSION = 1.0
SLIPPAGE_BPS = 10
SLIP = SLIPPAGE_BPS / 10_000.0
WARMUP_BARS = 2_000

OURS = ("event", "vectorized")
PEER_NAMES = ("backtesting", "vectorbt")
LABELS = {
    "event": "ours, event-driven",
    "vectorized": "ours, vectorized",
    "backtesting": "backtesting.py",
    "vectorbt": "vectorbt",
}
GOAL_BARS = 1_000_000
GOAL_VECTORIZED, GOAL_EVENT, GOAL_MB = 20.0, 2.0, 1024.0


@dataclass
class TradeRow:
    """One round trip (or an open position: ``exit_time`` None) in comparable units."""

    entry_time: str
    size: float
    entry_price: float  # the fill price, slippage included
    exit_time: str | None = None
    exit_price: float | None = None
    pnl: float | None = None  # after both commissions


# --- the child: one engine, one size ------------------------------------------------------
def bars(n: int, seed: int = SEED) -> Any:
    from quant.backtest.sample import random_walk_bars

    return random_walk_bars(n, seed=seed)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_ours(mode: str, frame: Any) -> tuple[float, list[TradeRow]]:
    from quant.backtest import BacktestConfig, BacktestEngine, MarketData
    from quant.strategies.config import config_validate

    data = MarketData.from_frames({"SPY": frame})
    config = config_validate(
        {
            "name": "bench",
            "class": "sma_crossover",
            "symbols": ["SPY"],
            "params": {"fast": FAST, "slow": SLOW},
            "sizing": {"mode": "percent", "percent": 100},
        }
    )
    settings = BacktestConfig(
        initial_capital=Decimal(str(int(CASH))),
        commission_per_trade=Decimal(str(int(COMMISSION))),
        slippage_bps=Decimal(SLIPPAGE_BPS),
    )
    strategy = config.build()
    started = time.perf_counter()
    result = BacktestEngine().run(strategy, data, settings, mode=mode)
    seconds = time.perf_counter() - started
    rows = [
        TradeRow(
            entry_time=t.entry_time.isoformat(),
            size=float(t.quantity),
            entry_price=float(t.entry_price),
            exit_time=t.exit_time.isoformat(),
            exit_price=float(t.exit_price),
            pnl=float(t.pnl),
        )
        for t in result.trades
    ]
    rows += [
        TradeRow(p.entry_time.isoformat(), float(p.quantity), float(p.entry_price))
        for p in result.open_positions
    ]
    return seconds, rows


def backtesting_strategy(bt: Any) -> Any:
    """Our SMA crossover as a backtesting.py ``Strategy`` (same SMA floats, same decisions)."""
    from quant.strategies.indicators import sma

    class SmaCross(bt.Strategy):
        fast = FAST
        slow = SLOW

        def init(self) -> None:
            self.sma_fast = self.I(sma, self.data.Close, self.fast, name="sma_fast")
            self.sma_slow = self.I(sma, self.data.Close, self.slow, name="sma_slow")
            self.target = 0  # like our engine, act only when the wanted side changes

        def next(self) -> None:
            f, s = self.sma_fast, self.sma_slow
            if f[-2] < s[-2] and f[-1] > s[-1]:
                if self.target != 1:
                    self.target = 1
                    if not self.position:
                        fill = self.data.Close[-1] * (1.0 + SLIP)
                        shares = math.floor((self.equity - COMMISSION) / fill)
                        if shares >= 1:
                            self.buy(size=shares)
            elif f[-2] > s[-2] and f[-1] < s[-1] and self.target != -1:
                self.target = -1
                if self.position:
                    self.position.close()

    return SmaCross


def run_backtesting(bt: Any, frame: Any) -> tuple[float, list[TradeRow]]:
    data = frame.rename(columns=str.capitalize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "trades remain open at the end", ...
        test = bt.Backtest(
            data,
            backtesting_strategy(bt),
            cash=CASH,
            spread=0.0,
            commission=(COMMISSION, SLIP),
            trade_on_close=True,
        )
        started = time.perf_counter()
        stats = test.run()
        seconds = time.perf_counter() - started
    index, closes = data.index, data["Close"].to_numpy()
    last = len(data) - 1
    rows = [
        TradeRow(
            entry_time=index[int(t.EntryBar)].isoformat(),
            size=float(t.Size),
            entry_price=float(t.EntryPrice) * (1.0 + SLIP),
            exit_time=index[int(t.ExitBar)].isoformat(),
            exit_price=float(t.ExitPrice) * (1.0 - SLIP),
            pnl=float(t.PnL),
        )
        for t in stats["_trades"].itertuples()
    ]
    strategy = stats["_strategy"]
    closing = {id(o.parent_trade) for o in strategy.orders if o.parent_trade is not None}
    for trade in strategy.trades:
        entry = float(trade.entry_price)
        if id(trade) in closing:  # closed on the final bar: filled at its close by bt's rules
            size, close = float(trade.size), float(closes[last])
            fees = 2 * COMMISSION + size * entry * SLIP + size * close * SLIP
            rows.append(
                TradeRow(
                    entry_time=index[int(trade.entry_bar)].isoformat(),
                    size=size,
                    entry_price=entry * (1.0 + SLIP),
                    exit_time=index[last].isoformat(),
                    exit_price=close * (1.0 - SLIP),
                    pnl=size * (close - entry) - fees,
                )
            )
        else:
            rows.append(
                TradeRow(
                    index[int(trade.entry_bar)].isoformat(), float(trade.size), entry * (1 + SLIP)
                )
            )
    for order in strategy.orders:  # an entry placed on the final bar
        if order.parent_trade is None and order.size > 0:
            fill = float(closes[last]) * (1.0 + SLIP)
            rows.append(TradeRow(index[last].isoformat(), float(order.size), fill))
    return seconds, rows


def run_vectorbt(vbt: Any, frame: Any) -> tuple[float, list[TradeRow]]:
    import numpy as np

    from quant.strategies.indicators import crossed_above, sma

    close = frame["close"].tz_localize(None)  # same instants; see the module docstring
    started = time.perf_counter()
    values = close.to_numpy()
    fast, slow = sma(values, FAST), sma(values, SLOW)
    entries, exits = crossed_above(fast, slow), crossed_above(slow, fast)
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries,
        exits,
        init_cash=CASH,
        fees=0.0,
        fixed_fees=COMMISSION,
        slippage=SLIP,
        size=np.inf,
        size_granularity=1,
    )
    records = portfolio.trades.records_arr
    seconds = time.perf_counter() - started
    index = frame.index
    rows: list[TradeRow] = []
    for r in records:
        entry = index[int(r["entry_idx"])].isoformat()
        if int(r["status"]) == 0:  # open
            rows.append(TradeRow(entry, float(r["size"]), float(r["entry_price"])))
            continue
        rows.append(
            TradeRow(
                entry_time=entry,
                size=float(r["size"]),
                entry_price=float(r["entry_price"]),
                exit_time=index[int(r["exit_idx"])].isoformat(),
                exit_price=float(r["exit_price"]),
                pnl=float(r["pnl"]),
            )
        )
    return seconds, rows


def child(engine: str, n: int, repeat: int, trades_out: Path) -> dict[str, Any]:
    """Run one engine on n bars ``repeat`` times (after a warm-up); report best time and peak."""
    figures: dict[str, Any] = {"engine": engine, "bars": n}
    module: Any = None
    if engine in PEER_NAMES:
        os.environ["TQDM_DISABLE"] = "1"  # backtesting.py shows a tqdm bar when tqdm is around
        sys.path.append(str(PEERS))  # after .venv's own packages: our numpy and pandas win
        try:
            module = importlib.import_module(engine)
        except ImportError as exc:
            where = "" if PEERS.is_dir() else f" ({PEERS.relative_to(ROOT)}/ is missing)"
            return {**figures, "unavailable": f"{exc}{where}; install with: {INSTALL}"}
        figures["version"] = str(getattr(module, "__version__", "?"))

    def once(frame: Any) -> tuple[float, list[TradeRow]]:
        if engine == "backtesting":
            return run_backtesting(module, frame)
        if engine == "vectorbt":
            return run_vectorbt(module, frame)
        return run_ours(engine, frame)

    once(bars(WARMUP_BARS, seed=SEED + 1))
    frame = bars(n)
    figures["baseline_mb"] = round(peak_mb(), 1)  # imports, warm-up and the bars
    best: float = math.inf
    rows: list[TradeRow] = []
    for _ in range(repeat):
        seconds, rows = once(frame)
        best = min(best, seconds)
    trades_out.write_text(json.dumps([asdict(r) for r in rows]))
    return {
        **figures,
        "seconds": best,
        "repeats": repeat,
        "peak_mb": round(peak_mb(), 1),
        "trades": sum(r.exit_time is not None for r in rows),
        "open_positions": sum(r.exit_time is None for r in rows),
    }


# --- the parent: every engine and size, comparison, table ----------------------------------
def measure(engine: str, n: int, repeat: int, scratch: Path) -> tuple[dict[str, Any], list[Any]]:
    out = scratch / f"{engine}-{n}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", engine]
    command += ["--size", str(n), "--repeat", str(repeat), "--trades-out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"engine": engine, "bars": n, "failed": tail[0]}, []
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = json.loads(out.read_text()) if out.exists() else []
    return figures, rows


def compare(reference: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[str]:
    """The first differences between two trade lists (empty when they are identical)."""
    problems: list[str] = []
    if len(reference) != len(other):
        problems.append(f"{len(other)} trades/positions against {len(reference)}")
    for k, (a, b) in enumerate(zip(reference, other, strict=False)):
        wrong = [
            f"{key} {b[key]} vs {a[key]}"
            for key in ("entry_time", "exit_time", "size")
            if a[key] != b[key]
        ]
        for key in ("entry_price", "exit_price"):
            if (a[key] is None) != (b[key] is None) or (
                a[key] is not None and not math.isclose(a[key], b[key], rel_tol=1e-6)
            ):
                wrong.append(f"{key} {b[key]} vs {a[key]}")
        if (a["pnl"] is None) != (b["pnl"] is None) or (
            a["pnl"] is not None and abs(a["pnl"] - b["pnl"]) > 0.01 + 1e-9
        ):
            wrong.append(f"pnl {b['pnl']} vs {a['pnl']}")
        if wrong:
            problems.append(f"trade {k} (entry {a['entry_time']}): " + "; ".join(wrong))
        if len(problems) >= 5:
            break
    return problems


def repeats_for(n: int) -> int:
    return max(3, min(5, 300_000 // n))  # best of 3 even at 1M bars, for every engine alike


def ratio(peer: dict[str, Any] | None, run: dict[str, Any]) -> float | None:
    if not peer or "seconds" not in peer or "seconds" not in run:
        return None
    return float(peer["seconds"]) / float(run["seconds"])


def markdown_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| bars | engine | seconds | bars/s | vs backtesting.py | peak MB | trades |",
        "|---:|:---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        name = LABELS[run["engine"]]
        if "seconds" not in run:
            why = run.get("unavailable") or run.get("failed") or "?"
            lines.append(f"| {run['bars']:,} | {name} | - | - | - | - | {why[:60]} |")
            continue
        r = run.get("ratio_vs_backtesting")
        lines.append(
            f"| {run['bars']:,} | {name} | {run['seconds']:.3f} | {run['bars_per_s']:,.0f} "
            f"| {'-' if r is None else f'{r:.2f}x'} | {run['peak_mb']:,.0f} | {run['trades']:,} |"
        )
    return lines


def goals(runs: list[dict[str, Any]], at: int) -> dict[str, dict[str, Any]]:
    mine = {r["engine"]: r for r in runs if r["bars"] == at}
    out: dict[str, dict[str, Any]] = {}
    for key, engine, goal in (
        ("vectorized_vs_backtesting", "vectorized", GOAL_VECTORIZED),
        ("event_vs_backtesting", "event", GOAL_EVENT),
    ):
        value = mine.get(engine, {}).get("ratio_vs_backtesting")
        verdict = "n/a" if value is None else "PASS" if value >= goal else "FAIL"
        out[key] = {"goal": goal, "value": value, "verdict": verdict}
    peaks = [mine[e]["peak_mb"] for e in OURS if "peak_mb" in mine.get(e, {})]
    worst = max(peaks) if peaks else None
    verdict = "n/a" if worst is None else "PASS" if worst < GOAL_MB else "FAIL"
    out["peak_memory_mb"] = {"goal": GOAL_MB, "value": worst, "verdict": verdict}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated bars")
    parser.add_argument("--skip-peers", action="store_true", help="only our two engine paths")
    parser.add_argument("--repeat", type=int, help="runs per measurement (default by size)")
    parser.add_argument("--child", choices=[*OURS, *PEER_NAMES], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trades-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.size, args.repeat or 1, args.trades_out)))
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    engines = [*OURS] if args.skip_peers else [*OURS, *PEER_NAMES]
    print(
        f"SMA {FAST}/{SLOW} crossover, long only, on seeded random-walk daily bars (seed {SEED});"
        f" ${COMMISSION:g} + {SLIPPAGE_BPS} bps per fill, all-in whole shares from ${CASH:,.0f}"
    )
    if not args.skip_peers and not PEERS.is_dir():
        print(f"peers: {PEERS.relative_to(ROOT)}/ is missing; install them with:\n  {INSTALL}")
    runs: list[dict[str, Any]] = []
    peers: dict[str, str] = {}
    missing: set[str] = set()
    identical: list[bool] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="backtest-speed-") as tmp:
        scratch = Path(tmp)
        for n in sizes:
            repeat = args.repeat or repeats_for(n)
            here: dict[str, dict[str, Any]] = {}
            trades: dict[str, list[Any]] = {}
            for engine in engines:
                if engine in missing:
                    continue  # not installed: said once
                figures, rows = measure(engine, n, repeat, scratch)
                if engine in PEER_NAMES:
                    if "unavailable" in figures:
                        missing.add(engine)
                        peers[engine] = f"not installed ({figures['unavailable']})"
                        print(f"{engine}: {peers[engine]}")
                        continue
                    peers[engine] = str(figures.get("version", "?"))
                if "seconds" in figures:
                    figures["bars_per_s"] = n / figures["seconds"]
                    trades[engine] = rows
                else:
                    print(f"{LABELS[engine]} at {n:,} bars failed: {figures.get('failed')}")
                    failed = True
                here[engine] = figures
                runs.append(figures)
                print(
                    f"  {n:>9,} bars  {LABELS[engine]:<20} {figures.get('seconds', math.nan):8.3f} s"
                )
            for figures in here.values():
                figures["ratio_vs_backtesting"] = ratio(here.get("backtesting"), figures)
            checks = [("event", "vectorized")]
            checks += [(peer, mine) for peer in PEER_NAMES for mine in OURS]
            for reference, other in checks:
                if reference not in trades or other not in trades:
                    continue
                problems = compare(trades[reference], trades[other])
                identical.append(not problems)
                count = sum(r["exit_time"] is not None for r in trades[reference])
                title = f"  {n:>9,} bars  {LABELS[other]} vs {LABELS[reference]}"
                if problems:
                    print(f"{title}: trades identical: NO")
                    for problem in problems:
                        print(f"      {problem}")
                else:
                    print(f"{title}: trades identical: yes ({count:,} trades)")

    print()
    print("\n".join(markdown_table(runs)))
    at = GOAL_BARS if GOAL_BARS in sizes else max(sizes)
    verdicts = goals(runs, at)
    print(f"\nGoals at {at:,} bars" + ("" if at == GOAL_BARS else f" (stated for {GOAL_BARS:,})"))
    for key, label in (
        ("vectorized_vs_backtesting", f"vectorized >= {GOAL_VECTORIZED:g}x backtesting.py"),
        ("event_vs_backtesting", f"event-driven >= {GOAL_EVENT:g}x backtesting.py"),
    ):
        goal = verdicts[key]
        if goal["value"] is None:
            print(f"  {label:<36} {'n/a':>8}  (no backtesting.py run)")
        else:
            print(f"  {label:<36} {goal['value']:>7.2f}x  {goal['verdict']}")
    memory = verdicts["peak_memory_mb"]
    value = "n/a" if memory["value"] is None else f"{memory['value']:,.0f} MB"
    print(f"  {'peak memory (ours) < 1024 MB':<36} {value:>8}  {memory['verdict']}")
    all_same = all(identical) if identical else None
    if all_same is False:
        print("trades differ: see above")
    print(
        json.dumps(
            {
                "benchmark": "backtest_speed",
                "strategy": {"class": "sma_crossover", "fast": FAST, "slow": SLOW},
                "seed": SEED,
                "sizes": sizes,
                "peers": peers,
                "runs": runs,
                "trades_identical": all_same,
                "failed": failed,
                "goals_at_bars": at,
                "goals": verdicts,
            }
        )
    )
    return 1 if failed or all_same is False else 0


if __name__ == "__main__":
    sys.exit(main())
