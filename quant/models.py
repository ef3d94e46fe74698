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
