"""The Django-free core: every module under ``quant`` imports in a fresh interpreter without
loading Django, Celery or a web framework (architecture principle 1, and the import-linter
contract ``core`` in ``.importlinter``)."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import quant

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("django", "celery", "kombu", "ninja", "channels", "daphne")
# The parts the issue names, imported by their own names as a user's script would.
ENTRY_POINTS = (
    "quant.backtest",
    "quant.backtest.engine",
    "quant.strategies.registry",
    "quant.features.definitions",
    "quant.ml.lightgbm_model",
    "quant.ml.sklearn_model",
    "quant.risk.rules",
    "quant.risk.state",
    "quant.orders.fsm",
)


def core_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(quant.__path__, prefix="quant."))


def test_every_core_module_imports_without_django_or_celery() -> None:
    modules = [*ENTRY_POINTS, *core_modules()]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import quant.strategies.registry as r; r.strategy_class('sma_crossover')\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r})))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]", result.stdout
    assert len(modules) > 40  # the walk found the core, not an empty package
