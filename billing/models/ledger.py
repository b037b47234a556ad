"""The ledger: what we charged and why, unique on account, period and kind."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from billing.models.usage import UsagePeriod


class LedgerKind(models.TextChoices):
    USAGE_OVERAGE = "usage_overage", "Usage overage"


class LedgerState(models.TextChoices):
    RATED = "rated", "Rated"  # amount decided, not yet at Stripe
    PUSHED = "pushed", "Pushed"  # an invoice item carries it at Stripe
    INVOICED = "invoiced", "Invoiced"  # the invoice carrying it is paid
    NOTHING_DUE = "nothing_due", "Nothing due"  # rated at zero: nothing is pushed
    FAILED = "failed", "Failed"  # the push failed MAX_PUSH_ATTEMPTS times: waits for staff (re-push with a reason)


class LedgerEntry(models.Model):
    """What we charged an account for one period, and why. Unique on (account, period, kind): rated once."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="ledger_entries")
    period = models.ForeignKey(UsagePeriod, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=LedgerKind.choices, default=LedgerKind.USAGE_OVERAGE)
    state = models.CharField(max_length=12, choices=LedgerState.choices)
    plan_price = models.ForeignKey("plans.PlanPrice", on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    amount_cents = models.PositiveBigIntegerField()
    # The rating, metric by metric: included, used, overage units, unit price, amount. Why we charged this.
    lines = models.JSONField(default=list)
    stripe_invoice_item_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_invoice_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    pushed_at = models.DateTimeField(null=True, blank=True)
    invoiced_at = models.DateTimeField(null=True, blank=True)
    # A push claims the entry by moving next_push_at past its lease (conditional UPDATE); a failure moves
    # it by the backoff. attempts > 0 means Stripe may already hold the item, so the next push looks for it
    # (by the ledger key in its metadata) before creating one.
    push_attempts = models.PositiveIntegerField(default=0)
    push_claimed_at = models.DateTimeField(null=True, blank=True)
    next_push_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Staff re-pushes so far: each writes under a key of its own (`...:repush:<n>`).
    repush_count = models.PositiveIntegerField(default=0)
    # A pending item of a subscription that stopped renewing was deleted and billed on an invoice of its
    # own (billing/ledger/rehome.py): when. Its writes carry `...:final:<write>` keys.
    rehomed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["account", "period", "kind"], name="ledger_account_period_kind"),
            models.CheckConstraint(
                name="ledger_zero_is_nothing_due",
                condition=(Q(amount_cents=0, state="nothing_due") | (Q(amount_cents__gt=0) & ~Q(state="nothing_due"))),
            ),
        ]
        indexes = [
            models.Index(fields=["state"], name="ledger_state"),
            # The push's due scan: rated entries by next attempt, so a failing entry never blocks newer ones.
            models.Index(fields=["state", "next_push_at"], name="ledger_state_next_push"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_cents / 100:.2f} {self.currency} ({self.state})"

    @property
    def ledger_key(self) -> str:
        """What this entry charges, in Stripe's terms: the same in every database sharing the Stripe account.

        A local primary key is not: a restored backup or a CI database reuses it for another charge.
        """
        return f"{self.kind}:{self.period.subscription_id}:{int(self.period.start.timestamp())}"

    def idempotency_key(self, write: str) -> str:
        """The key of one Stripe write for this entry (`invoice_item`, `invoice`, `finalize`)."""
        suffix = f":repush:{self.repush_count}" if self.repush_count else ""
        return f"{self.ledger_key}:{write}{suffix}"
