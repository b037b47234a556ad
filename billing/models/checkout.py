"""Checkout attempts: one per Stripe Checkout Session we open."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class CheckoutStatus(models.TextChoices):
    CREATING = "creating", "Creating"  # row written, Stripe not yet answered
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "Failed"


class CheckoutAttempt(models.Model):
    """One Stripe Checkout Session started for an account.

    At most one is creating/open per account (a partial unique constraint): a double click or a second
    tab reuses it, and a different choice expires it first, so two sessions can never both complete.
    """

    # The idempotency keys of its Stripe writes: the same attempt means the same thing in every database
    # sharing the Stripe account, which a local primary key alone would not.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="checkout_attempts")
    plan_price = models.ForeignKey("plans.PlanPrice", on_delete=models.PROTECT, related_name="+")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    status = models.CharField(max_length=10, choices=CheckoutStatus.choices, default=CheckoutStatus.CREATING)
    stripe_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(status__in=["creating", "open"]), name="one_open_checkout_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"checkout {self.pk} for {self.account_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"checkout:{self.key}"
