"""Scheduled plan changes: downgrades waiting for the period's end."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class PlanChangeStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"  # waiting for the end of the period
    APPLIED = "applied", "Applied"  # the new price is on the Stripe subscription
    CANCELED = "canceled", "Canceled"  # withdrawn by the merchant, or superseded


class ScheduledPlanChange(models.Model):
    """A downgrade that takes effect at the end of the current period (the merchant keeps what it paid for).

    One scheduled change per account at a time (a partial unique constraint); a Celery beat task applies it
    shortly before the period ends, so the renewal invoice is made on the new price.
    """

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="scheduled_plan_changes")
    stripe_subscription_id = models.CharField(max_length=255)
    from_price = models.ForeignKey("plans.PlanPrice", on_delete=models.PROTECT, related_name="+")
    to_price = models.ForeignKey("plans.PlanPrice", on_delete=models.PROTECT, related_name="+")
    effective_at = models.DateTimeField(help_text="The end of the period in which the change was asked for.")
    status = models.CharField(max_length=10, choices=PlanChangeStatus.choices, default=PlanChangeStatus.SCHEDULED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # A worker's lease on the change while it writes to Stripe: another run leaves the change alone until
    # the lease expires, and the status becomes APPLIED only once Stripe has answered.
    claimed_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(status="scheduled"), name="one_scheduled_plan_change_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: price {self.from_price_id} to {self.to_price_id} at {self.effective_at:%Y-%m-%d}"
