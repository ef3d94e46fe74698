"""Component heartbeats that /healthz reads (alerts arrive with the execution issue)."""

from __future__ import annotations

from django.db import models


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
