"""Dunning: the policy (edited in the admin) and one case per failed invoice."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class DunningPolicy(models.Model):
    """How Tollbooth treats a failed renewal, kept as data (ops tune it in the admin); the defaults come from
    settings the first time it is read. Stripe runs the payment retries themselves on its own schedule."""

    name = models.CharField(max_length=40, unique=True, default="default")
    grace_days = models.PositiveSmallIntegerField(help_text="Days past due before the account is suspended.")
    hard_decline_codes = models.JSONField(
        default=list, help_text="Decline codes that skip retries: the account is suspended at once."
    )

    class Meta:
        verbose_name_plural = "dunning policies"

    def __str__(self) -> str:
        return f"{self.name}: suspend after {self.grace_days} days"


class DunningStatus(models.TextChoices):
    OPEN = "open", "Open"  # past due, Stripe retrying, within the grace period
    SUSPENDED = "suspended", "Suspended"  # grace period over (or a hard decline): account suspended
    RECOVERED = "recovered", "Recovered"  # the invoice was paid
    CANCELED = "canceled", "Canceled"  # Stripe gave up: the subscription is canceled
    VOIDED = "void", "Voided"  # the invoice was voided: nothing is owed any more
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"  # the invoice was written off: no more collection


# A case in one of these statuses still holds money owed; every other status is closed for good.
DUNNING_UNPAID_STATUSES = (DunningStatus.OPEN, DunningStatus.SUSPENDED)


class DunningCase(models.Model):
    """One unpaid invoice and what dunning did about it. Unique per invoice: duplicate webhooks add nothing."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="dunning_cases")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=13, choices=DunningStatus.choices, default=DunningStatus.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    failures = models.PositiveSmallIntegerField(default=0)
    last_decline_code = models.CharField(max_length=60, blank=True)
    hard_decline = models.BooleanField(default=False)
    hard_declined_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"{self.account_id} {self.stripe_invoice_id} ({self.status})"


class DunningNoticeKind(models.TextChoices):
    PAYMENT_FAILED = "payment_failed", "Payment failed"  # the first (soft) decline of the invoice
    HARD_DECLINE = "hard_decline", "Hard decline: new card needed"  # also gates the fraud assessment
    SUSPENDED = "suspended", "Account suspended"
    RECOVERED = "recovered", "Payment received"


class DunningNotice(models.Model):
    """What dunning told the merchant (and fraud) about one case, once: unique on (case, kind).

    Webhooks are redelivered and Stripe retries fail again; the row, written in the transaction that
    decides to send, is what makes "one payment-failed email, one hard-decline email and one fraud
    assessment per invoice" hold."""

    case = models.ForeignKey(DunningCase, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=20, choices=DunningNoticeKind.choices)
    decline_code = models.CharField(max_length=60, blank=True)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "kind"], name="dunning_notice_once_per_case")]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind}"
