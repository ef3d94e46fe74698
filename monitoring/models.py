"""Component heartbeats that /healthz reads, and operational alerts with their deliveries."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q


class ComponentHeartbeat(models.Model):
    """Last sign of life of a background component (a Celery worker, Celery beat)."""

    component = models.CharField(max_length=32)
    instance = models.CharField(max_length=200, help_text="Host name or process identity")
    last_seen = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["component", "instance"], name="heartbeat_unique_instance"
            )
        ]

    def __str__(self) -> str:
        return f"{self.component}@{self.instance} {self.last_seen:%H:%M:%S}"


class AlertSeverity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"

    @property
    def rank(self) -> int:
        """Order of severities: INFO < WARNING < CRITICAL."""
        return _SEVERITY_RANK[self.value]


_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Alert(models.Model):
    """One operational alert; repeats of the same ``key`` inside the grouping window are
    folded into it (``count``, ``last_seen``) until someone acknowledges it."""

    severity = models.CharField(max_length=16, choices=AlertSeverity.choices)
    source = models.CharField(max_length=100, help_text="Raising component, e.g. risk.kill_switch")
    key = models.CharField(max_length=255, help_text="Repeats with the same key are grouped")
    message = models.TextField(help_text="Latest message raised under this key")
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="acknowledged_alerts",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__in=AlertSeverity.values), name="alert_severity_valid"
            ),
            models.CheckConstraint(condition=Q(count__gte=1), name="alert_count_positive"),
            models.CheckConstraint(
                condition=Q(last_seen__gte=F("first_seen")), name="alert_last_seen_after_first"
            ),
            # The acknowledging user may be deleted later (SET_NULL); the time stays.
            models.CheckConstraint(
                condition=Q(acknowledged_by__isnull=True) | Q(acknowledged_at__isnull=False),
                name="alert_acknowledged_has_time",
            ),
        ]
        indexes = [
            # Hot query of every raise: the open alert of a key, most recent first.
            models.Index(
                fields=["key", "-last_seen"],
                condition=Q(acknowledged_at__isnull=True),
                name="alert_unacknowledged_key_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.source}: {self.message[:80]}"

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None


class AlertChannel(models.TextChoices):
    SLACK = "slack", "Slack"
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertDelivery(models.Model):
    """Delivery of an alert on one channel at one severity (an escalation notifies again)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=AlertChannel.choices)
    severity = models.CharField(
        max_length=16, choices=AlertSeverity.choices, help_text="Severity this round notified"
    )
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    delivered_to = models.JSONField(
        default=list, blank=True, help_text="Recipients already reached (not sent again)"
    )
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["alert_id", "created_at", "channel"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "channel", "severity"], name="alert_delivery_unique_round"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="alert_delivery_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=AlertChannel.values), name="alert_delivery_channel_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=DeliveryStatus.SENT) | Q(sent_at__isnull=False),
                name="alert_delivery_sent_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"alert {self.alert_id} {self.channel}/{self.severity}: {self.status}"
