"""Celery tasks of the common kit: housekeeping of the API's sign-ins (beat-driven)."""

from __future__ import annotations

from celery import shared_task

from common.auth import token_families_purge


@shared_task(name="auth.token_families_purge", ignore_result=True)
def purge_token_families() -> int:
    """Delete the sign-ins whose refresh tokens have all expired."""
    return token_families_purge()
