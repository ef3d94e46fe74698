"""Admin: instruments, bars (read-only), ingestion jobs with a retry action, quality reports."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from marketdata import services
from marketdata.models import Bar, DataQualityReport, IngestionJob, Instrument
from quant.errors import ConflictError


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows written by services only: the admin shows them and never edits them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("symbol", "name", "asset_class", "exchange", "active", "created_at")
    list_filter = ("active", "asset_class", "exchange")
    search_fields = ("symbol", "name")
    actions = ["check_quality"]

    @admin.action(description="Run the daily-bar quality checks for the selected instruments")
    def check_quality(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> None:
        reports = services.data_quality_run(symbols=list(queryset.values_list("symbol", flat=True)))
        summary = ", ".join(f"{r.instrument.symbol} {r.status}" for r in reports)
        self.message_user(request, f"Quality checked: {summary}", messages.SUCCESS)


@admin.register(Bar)
class BarAdmin(ReadOnlyAdmin):
    list_display = (
        "instrument",
        "timeframe",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "source",
    )
    list_filter = ("timeframe", "source", "instrument")
    list_select_related = ("instrument",)
    search_fields = ("instrument__symbol",)
    date_hierarchy = "ts"
    show_full_result_count = False  # COUNT(*) over millions of bars on every page is too slow


@admin.register(IngestionJob)
class IngestionJobAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "provider",
        "timeframe",
        "symbol_list",
        "start",
        "end",
        "status",
        "chunks_done",
        "chunks_total",
        "rows_written",
        "rows_unchanged",
        "attempts",
        "created_at",
    )
    list_filter = ("status", "provider", "timeframe")
    readonly_fields = [f.name for f in IngestionJob._meta.fields]
    actions = ["retry_jobs"]

    @admin.display(description="Symbols")
    def symbol_list(self, job: IngestionJob) -> str:
        text = ", ".join(job.symbols)
        return text if len(text) <= 60 else text[:57] + "..."

    @admin.action(
        description="Retry the selected failed jobs (they resume after the last committed chunk)"
    )
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[IngestionJob]) -> None:
        retried: list[int] = []
        for job in queryset:
            try:
                services.ingestion_job_retry(job=job)
            except ConflictError as error:
                self.message_user(request, error.message, messages.WARNING)
                continue
            services.ingestion_job_submit(job=job)
            retried.append(job.pk)
        if retried:
            self.message_user(
                request, f"Queued again: {', '.join(f'#{pk}' for pk in retried)}", messages.SUCCESS
            )


@admin.register(DataQualityReport)
class DataQualityReportAdmin(ReadOnlyAdmin):
    list_display = (
        "instrument",
        "timeframe",
        "checked_at",
        "status",
        "is_stale",
        "bar_count",
        "issue_counts",
    )
    list_filter = ("status", "is_stale", "timeframe", "instrument")
    list_select_related = ("instrument",)
    readonly_fields = [f.name for f in DataQualityReport._meta.fields]
