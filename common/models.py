"""The API's sign-in state: token families and their refresh tokens (``common.auth``).

A family is one sign-in (``POST /v1/auth/login``): every token pair issued for it, first and
after each refresh, names it in its ``fam`` claim. A refresh token is good for one refresh; the
refresh marks it used and issues the next pair in the same family. A used token presented again
(a stolen copy, or the original after the thief refreshed first) revokes the whole family, as do
logout, a password change and deactivation; an access token of a revoked family stops working
too.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class TokenFamily(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_families"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=40, blank=True)

    class Meta:
        verbose_name_plural = "token families"
        indexes = [models.Index(fields=["user", "revoked_at"], name="tokenfamily_user_revoked")]

    def __str__(self) -> str:
        state = f"revoked ({self.revoked_reason})" if self.revoked_at else "live"
        return f"sign-in {self.pk} of user {self.user_id}: {state}"


class RefreshToken(models.Model):
    jti = models.UUIDField(primary_key=True, editable=False)
    family = models.ForeignKey(TokenFamily, on_delete=models.CASCADE, related_name="tokens")
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"refresh token {self.jti} ({'used' if self.used_at else 'unused'})"
