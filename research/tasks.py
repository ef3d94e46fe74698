"""Celery tasks of the research app: thin callers of the services."""

from __future__ import annotations

from celery import shared_task

from research import training


@shared_task(name="quant.train_model", acks_late=True, ignore_result=True)
def train_model(artifact_id: int) -> None:
    """Train one TRAINING model artifact (a redelivered task leaves a finished one alone)."""
    training.model_artifact_train(artifact_id=artifact_id)
