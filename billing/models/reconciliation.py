"""Reconciliation runs and the differences they found."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ReconciliationRun(models.Model):
    """One comparison of Tollbooth's ledger and expected plan fees with what Stripe invoiced."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField()
    accounts_checked = models.PositiveIntegerField(default=0)
    invoices_checked = models.PositiveIntegerField(default=0)
    differences_found = models.PositiveIntegerField(default=0)
    differences_healed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"reconciliation {self.started_at:%Y-%m-%d %H:%M}: {self.differences_found} difference(s)"

    @property
    def differences_unhealed(self) -> int:
        return self.differences_found - self.differences_healed


class DifferenceKind(models.TextChoices):
    # The ledger against Stripe's invoice items (reported; a re-push is a staff action with a reason).
    LEDGER_LINE_MISSING = "ledger_line_missing", "Ledger line missing at Stripe"
    LEDGER_LINE_DUPLICATED = "ledger_line_duplicated", "Ledger line duplicated at Stripe"
    LEDGER_AMOUNT_DIFFERS = "ledger_amount_differs", "Ledger amount differs at Stripe"
    LEDGER_NOT_INVOICED = "ledger_not_invoiced", "Ledger line pushed but not invoiced in time"
    LEDGER_PUSH_FAILED = "ledger_push_failed", "Ledger line whose push keeps failing"
    LEDGER_NOT_PUSHED = "ledger_not_pushed", "Ledger line rated but not pushed in time"
    # Plan fees against the catalog.
    PLAN_FEE_DIFFERS = "plan_fee_differs", "Plan fee differs from the catalog"
    PLAN_FEE_DUPLICATED = "plan_fee_duplicated", "Plan fee invoiced twice for a period"
    # Stripe's subscriptions against our mirror and accounts (healed by a re-sync from Stripe).
    SUBSCRIPTION_WITHOUT_ACCOUNT = "subscription_without_account", "Stripe subscription without an account"
    ACCOUNT_WITHOUT_SUBSCRIPTION = "account_without_subscription", "Paying account without a subscription"
    STATUS_DRIFT = "status_drift", "Account status differs from its subscription"
    SUBSCRIPTION_NOT_MIRRORED = "subscription_not_mirrored", "Stripe subscription missing from the mirror"
    SUBSCRIPTION_STATUS_DRIFT = "subscription_status_drift", "Subscription status differs from Stripe"
    PLAN_DRIFT = "plan_drift", "Subscription plan differs from Stripe"
    INTERVAL_DRIFT = "interval_drift", "Subscription interval differs from Stripe"
    QUANTITY_DRIFT = "quantity_drift", "Subscription quantity differs from Stripe"
    CANCEL_FLAG_DRIFT = "cancel_flag_drift", "Cancel-at-period-end differs from Stripe"
    TRIAL_END_DRIFT = "trial_end_drift", "Trial end differs from Stripe"
    ACCOUNT_PLAN_DRIFT = "account_plan_drift", "Account's plan differs from its subscription"


class ReconciliationDifference(models.Model):
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="differences")
    account = models.ForeignKey("accounts.Account", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=40, choices=DifferenceKind.choices)
    stripe_id = models.CharField(max_length=255, blank=True)
    expected = models.CharField(max_length=120, blank=True)
    actual = models.CharField(max_length=120, blank=True)
    details = models.JSONField(default=dict, blank=True)
    healed = models.BooleanField(
        default=False, help_text="Fixed by a safe self-heal: a re-sync from Stripe (never a charge)."
    )

    class Meta:
        ordering = ["kind", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.stripe_id}"
