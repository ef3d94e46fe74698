"""Demo data for the embedded mode: instruments, a few years of synthetic daily bars, an admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Max

from marketdata import services
from marketdata.domain import Timeframe
from marketdata.models import Bar, IngestionJob, Instrument
from marketdata.selectors import check_data_freshness

DEMO_INSTRUMENTS: dict[str, str] = {
    "AAPL": "Apple Inc.",
    "MSFT": "Microsoft Corporation",
    "GOOGL": "Alphabet Inc. Class A",
    "AMZN": "Amazon.com Inc.",
    "SPY": "SPDR S&P 500 ETF Trust",
    "QQQ": "Invesco QQQ Trust",
}
DEMO_YEARS = 3
DEMO_ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoSeed:
    job: IngestionJob | None
    admin_password: str | None  # only when the admin user was created by this call


def demo_seed(*, now: datetime, years: int = DEMO_YEARS) -> DemoSeed:
    """Create what is missing; a second call only tops up bars up to ``now``."""
    for symbol, name in DEMO_INSTRUMENTS.items():
        instrument = services.instrument_ensure(symbol=symbol)
        if not instrument.name:
            Instrument.objects.filter(pk=instrument.pk).update(name=name)
    lasts = (
        Bar.objects.filter(instrument__symbol__in=DEMO_INSTRUMENTS, timeframe=Timeframe.DAY_1.value)
        .values("instrument__symbol")
        .annotate(last=Max("ts"))
    )
    last_by_symbol = {row["instrument__symbol"]: row["last"] for row in lasts}
    if len(last_by_symbol) == len(DEMO_INSTRUMENTS):
        start = min(last_by_symbol.values())  # top up from the oldest last bar
    else:
        start = now - timedelta(days=round(365.25 * years))
    job: IngestionJob | None = None
    stale = len(last_by_symbol) < len(DEMO_INSTRUMENTS) or any(
        check_data_freshness(symbol=symbol, now=now).is_stale for symbol in DEMO_INSTRUMENTS
    )
    if stale:
        job = services.ingestion_job_create(
            provider="synthetic",
            symbols=list(DEMO_INSTRUMENTS),
            timeframe=Timeframe.DAY_1,
            start=start,
            end=now,
        )
        job = services.ingestion_job_run(job_id=job.pk)
        services.data_quality_run(symbols=list(DEMO_INSTRUMENTS), now=now)
    return DemoSeed(job=job, admin_password=_demo_admin())


def _demo_admin() -> str | None:
    users = get_user_model()
    if users.objects.filter(username=DEMO_ADMIN_USERNAME).exists():
        return None
    password = secrets.token_urlsafe(12)
    users.objects.create_superuser(DEMO_ADMIN_USERNAME, email="", password=password)
    return password
