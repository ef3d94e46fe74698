"""``manage.py seed_demo``: demo instruments, synthetic daily bars, the shipped strategies and
feature sets, a finished demo backtest and the demo admin user."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from backtests.demo import demo_backtest_ensure
from marketdata.demo import DEMO_ADMIN_USERNAME, DEMO_INSTRUMENTS, DEMO_YEARS, demo_seed
from marketdata.models import JobStatus
from research.feature_store import feature_sets_load_directory, shipped_feature_sets
from risk.selectors import admin_code_is_set
from risk.services import admin_code_set


class Command(BaseCommand):
    help = "Seed demo instruments, a few years of deterministic synthetic daily bars and an admin user."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--years", type=int, default=DEMO_YEARS, help="Years of daily bars (default 3)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seed = demo_seed(now=timezone.now(), years=options["years"])
        if seed.job is None:
            self.stdout.write(f"Demo data is up to date ({len(DEMO_INSTRUMENTS)} instruments).")
        elif seed.job.status != JobStatus.SUCCEEDED:
            raise CommandError(
                f"seeding failed: ingestion job #{seed.job.pk} {seed.job.status}: {seed.job.error}"
            )
        else:
            self.stdout.write(
                f"Demo data: {len(DEMO_INSTRUMENTS)} instruments, {seed.job.rows_written} bars written, "
                f"{seed.job.rows_unchanged} unchanged (job #{seed.job.pk})."
            )
        demo = demo_backtest_ensure()
        for loaded in demo.strategies.results:
            line = f"Strategy {loaded.summary}"
            self.stdout.write(self.style.WARNING(line) if loaded.conflict else line)
        features = feature_sets_load_directory(path=shipped_feature_sets())
        for result in features.results:
            self.stdout.write(f"Feature set {result.summary}")
        if demo.run is not None:
            run = demo.run
            if run.status != "succeeded":
                raise CommandError(f"demo backtest run {run.pk} {run.status}: {run.error_message}")
            self.stdout.write(
                f"Demo backtest: run {run.pk} of {run.strategy_config['name']}, "
                f"{run.total_trades} trades, final equity {run.final_equity}."
            )
        admin_code = _kill_switch_admin_code_ensure()
        if admin_code:
            self.stdout.write(
                self.style.SUCCESS(
                    "\n  Kill-switch admin code created (shown only this once; needed to "
                    f"deactivate the kill switch):\n    {admin_code}\n"
                    "  Change it with: python manage.py killswitch set-admin-code --code NEW\n"
                )
            )
        if seed.admin_password:
            self.stdout.write(
                self.style.SUCCESS(
                    "\n  Demo admin user created (shown only this once):\n"
                    f"    username: {DEMO_ADMIN_USERNAME}\n    password: {seed.admin_password}\n"
                    "  Change it with: python manage.py changepassword admin\n"
                )
            )


def _kill_switch_admin_code_ensure() -> str | None:
    """A random admin code on first seed (only its hash is stored); None when one exists."""
    import secrets

    if admin_code_is_set():
        return None
    code = secrets.token_urlsafe(12)
    admin_code_set(code=code)
    return code
