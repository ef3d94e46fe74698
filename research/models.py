"""Research models: strategies and the append-only history of their configs.

A ``Strategy`` is one named config (``configs/strategies/<name>.yaml``). Each change of its
config is stored as a new ``StrategyVersion``; runs point at the version they ran, so a
result can always be traced to the exact parameters behind it. The strategy's ``class_name``,
``symbols``, ``timeframe`` and ``description`` are copies of its current version's config,
kept for listing and filtering.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from quant.strategies.config import TIMEFRAMES, StrategyConfig, config_validate

TIMEFRAME_CHOICES = [(tf, tf) for tf in TIMEFRAMES]


class StrategyMode(models.TextChoices):
    RESEARCH = "research", "Research"
    PAPER = "paper", "Paper trading"
    LIVE = "live", "Live trading"


class Strategy(models.Model):
    name = models.CharField(max_length=100, help_text="Unique config name, e.g. sma_crossover")
    class_name = models.CharField(max_length=100, help_text="Registered strategy class")
    description = models.TextField(blank=True)
    symbols = models.JSONField(default=list, help_text="List of symbols")
    timeframe = models.CharField(max_length=8, choices=TIMEFRAME_CHOICES, default="1Day")
    mode = models.CharField(
        max_length=16, choices=StrategyMode.choices, default=StrategyMode.RESEARCH
    )
    current_version = models.ForeignKey(
        "StrategyVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    source_path = models.CharField(
        max_length=500, blank=True, help_text="The YAML file it was loaded from"
    )
    is_active = models.BooleanField(default=True)
    reviewed_version = models.ForeignKey(
        "StrategyVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version whose review was approved (gate 1); a newer version is unreviewed",
    )
    reviewed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the review of the reviewed version was approved"
    )
    source_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text="Content hash of the config its YAML file held when last loaded",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "strategies"
        constraints = [
            models.UniqueConstraint(fields=["name"], name="strategy_unique_name"),
            models.CheckConstraint(
                condition=Q(name__regex=r"^[A-Za-z0-9_.\-]+$"), name="strategy_name_slug"
            ),
            models.CheckConstraint(
                condition=Q(mode__in=StrategyMode.values), name="strategy_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_reviewed(self) -> bool:
        """Gate 1 holds for the current version (a review belongs to one version)."""
        return self.current_version_id is not None and (
            self.reviewed_version_id == self.current_version_id
        )


class VersionSource(models.TextChoices):
    FILE = "file", "YAML file"
    ADMIN = "admin", "Admin"
    API = "api", "API"


class StrategyVersion(models.Model):
    """One config of a strategy, never changed once written.

    Numbers run 1, 2, 3... per strategy. Only (strategy, number) is unique: when a config
    comes back to what an older version held, it gets a new number, so the history stays a
    straight line ("v3 restored v1's params") and ``current_version`` is always the newest.
    """

    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(help_text="The full validated config, defaults included")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the canonical config")
    interface_version = models.PositiveIntegerField(
        help_text="Strategy interface version of the class when this version was stored"
    )
    source = models.CharField(max_length=8, choices=VersionSource.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["strategy", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["strategy", "number"], name="strategyversion_unique_number"
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="strategyversion_number_gte_1"),
            models.CheckConstraint(
                condition=Q(source__in=VersionSource.values), name="strategyversion_source_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["strategy", "content_hash"], name="strategyversion_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy.name} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("strategy versions are append-only; store a new version instead")
        super().save(*args, **kwargs)

    def as_config(self) -> StrategyConfig:
        """The stored config, validated again (raises if the class or its params changed)."""
        return config_validate(self.config, source=f"strategy version {self}")


class ApprovalKind(models.TextChoices):
    """The human-in-the-loop gates of the spec (risk limit changes live in the risk app)."""

    STRATEGY_REVIEW = "strategy_review", "Strategy review (before backtests)"
    PROMOTE_PAPER = "promote_paper", "Backtest → paper trading"
    PROMOTE_LIVE = "promote_live", "Paper → live trading"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ApprovalRequest(models.Model):
    """A request to pass one gate, with its evidence, decided by a different user."""

    kind = models.CharField(max_length=20, choices=ApprovalKind.choices)
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="approvals")
    strategy_version = models.ForeignKey(
        StrategyVersion, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    status = models.CharField(
        max_length=12, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    evidence = models.JSONField(default=dict, blank=True, help_text="Run ids, paper results")
    note = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ApprovalKind.values), name="approval_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ApprovalStatus.values), name="approval_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True)
                | Q(requested_by__isnull=True)
                | ~Q(decided_by=models.F("requested_by")),
                name="approval_four_eyes",
            ),
            models.UniqueConstraint(
                fields=["strategy", "kind"],
                condition=Q(status="pending"),
                name="approval_one_pending_per_gate",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.strategy} [{self.status}]"


class ModeChange(models.Model):
    """Audit of every change of a strategy's mode (promotions and demotions)."""

    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="mode_changes")
    from_mode = models.CharField(max_length=16, choices=StrategyMode.choices)
    to_mode = models.CharField(max_length=16, choices=StrategyMode.choices)
    strategy_version = models.ForeignKey(
        StrategyVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The strategy's version when its mode changed",
    )
    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    changed_by = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    reason = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.strategy}: {self.from_mode} → {self.to_mode}"


# --- research: feature sets, their cache, model artifacts (issue 5) ---------------------


class FeatureSet(models.Model):
    """A named feature set (``configs/features/<name>.yaml``); each definition is a version."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    current_version = models.ForeignKey(
        "FeatureSetVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FeatureSetVersion(models.Model):
    """One definition of a feature set; ``version`` is derived from the definition (a hash)."""

    feature_set = models.ForeignKey(FeatureSet, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=64, help_text="Hash of the canonical definition")
    definition = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["feature_set", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["feature_set", "version"], name="featuresetversion_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.feature_set.name}@{self.version[:12]}"


class FeatureCacheEntry(models.Model):
    """Computed features of one (version, symbol, timeframe, range), stored as Parquet."""

    feature_set_version = models.ForeignKey(
        FeatureSetVersion, on_delete=models.CASCADE, related_name="cache_entries"
    )
    symbol = models.CharField(max_length=32)
    timeframe = models.CharField(max_length=8)
    start = models.DateTimeField()
    end = models.DateTimeField()
    bars_fingerprint = models.CharField(
        max_length=64, help_text="Hash of the bars the features were computed from"
    )
    path = models.CharField(max_length=500, help_text="Storage name of the Parquet file")
    rows = models.PositiveIntegerField()
    columns = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["feature_set_version", "symbol", "timeframe", "start", "end"],
                name="featurecache_unique_key",
            ),
            models.CheckConstraint(
                condition=Q(end__gte=models.F("start")), name="featurecache_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature_set_version} {self.symbol} {self.timeframe} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


class ModelStatus(models.TextChoices):
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ModelArtifact(models.Model):
    """A trained ``TradingModel``: what it learned from, how it validated, where its file is."""

    name = models.CharField(max_length=100)
    kind = models.CharField(
        max_length=32, help_text="Implementation, e.g. lightgbm or sklearn_logistic"
    )
    status = models.CharField(
        max_length=10, choices=ModelStatus.choices, default=ModelStatus.TRAINING
    )
    feature_set_version = models.ForeignKey(
        FeatureSetVersion, on_delete=models.PROTECT, related_name="models"
    )
    symbols = models.JSONField(default=list)
    timeframe = models.CharField(max_length=8, default="1Day")
    train_start = models.DateTimeField(null=True, blank=True)
    train_end = models.DateTimeField(null=True, blank=True)
    label = models.JSONField(default=dict, help_text="Label definition (kind, horizon, thresholds)")
    params = models.JSONField(default=dict)
    feature_names = models.JSONField(default=list)
    validation = models.JSONField(
        default=dict, help_text="Purged K-fold with embargo: folds and metrics"
    )
    importance = models.JSONField(default=dict, help_text="Global feature importance")
    file = models.CharField(max_length=500, blank=True, help_text="Storage name of the artifact")
    file_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the file")
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker took the training (empty: queued)"
    )
    heartbeat_at = models.DateTimeField(
        default=timezone.now, help_text="Last sign of life: queued, claimed, or its worker's beat"
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Workers that took it")
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ModelStatus.values), name="modelartifact_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="ready") | ~Q(file_hash=""), name="modelartifact_ready_has_file"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}) #{self.pk}"
