"""Notices sent once: reminders (unique per account, kind and date) and receipts (unique per invoice)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ReminderKind(models.TextChoices):
    RENEWAL_30 = "renewal_30", "Annual renewal in 30 days"
    RENEWAL_7 = "renewal_7", "Annual renewal in 7 days"
    TRIAL_7 = "trial_7", "Trial ends in 7 days"
    TRIAL_1 = "trial_1", "Trial ends tomorrow"
    TRIAL_ENDED = "trial_ended", "Trial ended without a plan"


class Reminder(models.Model):
    """A reminder email sent once: unique on (account, kind, the date it is about)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    about = models.DateTimeField(help_text="The renewal or trial end the reminder announces.")
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [models.UniqueConstraint(fields=["account", "kind", "about"], name="reminder_once")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.kind} {self.about:%Y-%m-%d}"


class Receipt(models.Model):
    """A receipt emailed for a paid invoice; unique per invoice, so duplicate `invoice.paid` events send one."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="receipts")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    sent_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"receipt {self.stripe_invoice_id}"
