"""Instruments, OHLCV bars, ingestion jobs and data-quality reports."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from timescale.db.models.fields import TimescaleDateTimeField

from marketdata.domain import Timeframe

PRICE: dict[str, Any] = {"max_digits": 18, "decimal_places": 6}
VOLUME: dict[str, Any] = {"max_digits": 24, "decimal_places": 8}


class AssetClass(models.TextChoices):
    US_EQUITY = "us_equity", "US equity"
    CRYPTO = "crypto", "Crypto"


class Instrument(models.Model):
    symbol = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200, blank=True)
    asset_class = models.CharField(
        max_length=16, choices=AssetClass.choices, default=AssetClass.US_EQUITY
    )
    exchange = models.CharField(max_length=16, default="XNYS", help_text="Exchange calendar code")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(
                condition=Q(symbol__regex=r"^[A-Z0-9.\-/]+$"), name="instrument_symbol_uppercase"
            )
        ]

    def __str__(self) -> str:
        return self.symbol


TIMEFRAME_CHOICES = [(tf.value, tf.value) for tf in Timeframe]


class Bar(models.Model):
    """One OHLCV bar. Unique on (instrument, timeframe, ts); a hypertable on TimescaleDB.

    On TimescaleDB the ``id`` primary key is dropped (hypertables partition on ``ts``), so
    nothing may rely on ``id`` being unique: ingestion upserts on the natural key.
    """

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="bars")
    timeframe = models.CharField(max_length=8, choices=TIMEFRAME_CHOICES)
    ts = TimescaleDateTimeField(interval="30 days", help_text="Bar start, UTC")
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(**VOLUME)
    vwap = models.DecimalField(**PRICE, null=True, blank=True)
    trade_count = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32)
    ingested_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["instrument", "timeframe", "ts"]
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "timeframe", "ts"], name="bar_unique_instrument_timeframe_ts"
            ),
            models.CheckConstraint(condition=Q(high__gte=F("low")), name="bar_high_gte_low"),
            models.CheckConstraint(condition=Q(low__gt=0), name="bar_prices_positive"),
            models.CheckConstraint(condition=Q(volume__gte=0), name="bar_volume_non_negative"),
            models.CheckConstraint(
                condition=Q(timeframe__in=[tf.value for tf in Timeframe]),
                name="bar_timeframe_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.timeframe} {self.ts:%Y-%m-%d %H:%M}"


class JobStatus(models.TextChoices):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class IngestionJob(models.Model):
    """A backfill or update of bars from one provider. Resumable: ``cursor`` records the
    last committed chunk, and a rerun continues after it."""

    provider = models.CharField(max_length=32)
    symbols = models.JSONField(help_text="List of symbols")
    timeframe = models.CharField(max_length=8, choices=TIMEFRAME_CHOICES)
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    cursor = models.JSONField(
        default=dict, blank=True, help_text="Per symbol: end of the last committed chunk (ISO)"
    )
    rows_written = models.PositiveBigIntegerField(default=0, help_text="Bars inserted or changed")
    rows_unchanged = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(
        default=timezone.now, help_text="Last sign of life: queued, claimed, or its worker's beat"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")), name="ingestionjob_end_after_start"
            ),
            models.CheckConstraint(
                condition=Q(chunks_done__lte=F("chunks_total")),
                name="ingestionjob_progress_bounded",
            ),
        ]
        indexes = [
            models.Index(
                fields=["status"],
                name="ingestionjob_open",
                condition=Q(status__in=["QUEUED", "RUNNING"]),
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.provider} {self.timeframe} {','.join(self.symbols)}"

    @property
    def progress(self) -> float:
        return self.chunks_done / self.chunks_total if self.chunks_total else 0.0


class QualityStatus(models.TextChoices):
    OK = "OK"
    WARNING = "WARNING"
    FAILED = "FAILED"


class DataQualityReport(models.Model):
    """The result of the quality checks for one instrument and timeframe at one time."""

    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="quality_reports"
    )
    timeframe = models.CharField(max_length=8, choices=TIMEFRAME_CHOICES)
    checked_at = models.DateTimeField()
    range_start = models.DateTimeField(null=True, blank=True)
    range_end = models.DateTimeField(null=True, blank=True)
    bar_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=QualityStatus.choices)
    is_stale = models.BooleanField(default=False)
    issue_counts = models.JSONField(default=dict, help_text="Check name → number of findings")
    findings = models.JSONField(default=list, help_text="Up to 100 findings per check")

    class Meta:
        ordering = ["-checked_at"]
        indexes = [
            models.Index(fields=["instrument", "timeframe", "-checked_at"], name="quality_latest")
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.timeframe} {self.status} @ {self.checked_at:%Y-%m-%d %H:%M}"

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "bars": self.bar_count, "issues": self.issue_counts}
