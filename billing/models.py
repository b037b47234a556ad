"""Billing decisions. dj-stripe's tables are the mirror of Stripe; these rows are what we decided and why."""

from __future__ import annotations

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
        return f"checkout:attempt:{self.pk}"


# --- usage and the ledger ---------------------------------------------------------------------------------


class UsagePeriodState(models.TextChoices):
    OPEN = "open", "Open"  # accepting events, its finality window included
    RATED = "rated", "Rated"  # closed: rated and its ledger entry written; late events are refused


class UsagePeriod(models.Model):
    """One month of an account's usage, [start, end), anchored on its subscription's billing cycle anchor.

    Created by the first event booked to it. `plan_price` is the plan it is rated on: the highest-ranked
    plan the account held while the period was open (an upgrade mid-period raises it; see billing/usage.py).
    """

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="usage_periods")
    start = models.DateTimeField()
    end = models.DateTimeField()
    subscription_id = models.CharField(max_length=255, help_text="The Stripe subscription the period is anchored on.")
    plan_price = models.ForeignKey("plans.PlanPrice", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=10, choices=UsagePeriodState.choices, default=UsagePeriodState.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    rated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(fields=["account", "start"], name="usage_period_account_start"),
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="usage_period_end_after_start"),
        ]
        # The beat job's scan: open periods whose end is older than the finality window.
        indexes = [models.Index(fields=["state", "end"], name="usage_period_state_end")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.start:%Y-%m-%d} - {self.end:%Y-%m-%d} ({self.state})"


class UsageRollup(models.Model):
    """Units used of one metric in one period, kept current by ingestion (never recomputed from events)."""

    period = models.ForeignKey(UsagePeriod, on_delete=models.CASCADE, related_name="rollups")
    metric = models.SlugField(max_length=40)
    used = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["metric"]
        constraints = [models.UniqueConstraint(fields=["period", "metric"], name="usage_rollup_period_metric")]

    def __str__(self) -> str:
        return f"{self.metric}: {self.used}"


class UsageEvent(models.Model):
    """One billable usage report, as the product sent it. Unique per account and caller-chosen key.

    The foreign keys have no database constraint on purpose: ingestion inserts thousands of rows per
    statement while holding the period row (FOR SHARE), and per-row FK checks would lock and look up the
    same two parent rows once per event, roughly doubling the insert's cost.
    """

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    period = models.ForeignKey(
        UsagePeriod, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    metric = models.SlugField(max_length=40)
    quantity = models.PositiveIntegerField()
    occurred_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "idempotency_key"], name="usage_event_account_key"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} x{self.quantity} at {self.occurred_at:%Y-%m-%d %H:%M}"


class LedgerKind(models.TextChoices):
    USAGE_OVERAGE = "usage_overage", "Usage overage"


class LedgerState(models.TextChoices):
    RATED = "rated", "Rated"  # amount decided, not yet at Stripe
    PUSHED = "pushed", "Pushed"  # an invoice item carries it at Stripe
    INVOICED = "invoiced", "Invoiced"  # the invoice carrying it is paid
    NOTHING_DUE = "nothing_due", "Nothing due"  # rated at zero: nothing is pushed


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
    # A push claims the entry for a lease (conditional UPDATE); attempts > 0 means Stripe may already
    # hold the item, so the next push looks for it before creating one.
    push_attempts = models.PositiveIntegerField(default=0)
    push_claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

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
        indexes = [models.Index(fields=["state"], name="ledger_state")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_cents / 100:.2f} {self.currency} ({self.state})"

    @property
    def idempotency_key(self) -> str:
        return f"ledger:{self.pk}:invoice_item"


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


class DunningCase(models.Model):
    """One unpaid invoice and what dunning did about it. Unique per invoice: duplicate webhooks add nothing."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="dunning_cases")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=DunningStatus.choices, default=DunningStatus.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    failures = models.PositiveSmallIntegerField(default=0)
    last_decline_code = models.CharField(max_length=60, blank=True)
    hard_decline = models.BooleanField(default=False)
    suspended_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"{self.account_id} {self.stripe_invoice_id} ({self.status})"


class Receipt(models.Model):
    """A receipt emailed for a paid invoice; unique per invoice, so duplicate `invoice.paid` events send one."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="receipts")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    sent_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"receipt {self.stripe_invoice_id}"


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


class DifferenceKind(models.TextChoices):
    LEDGER_LINE_MISSING = "ledger_line_missing", "Ledger line missing at Stripe"
    LEDGER_LINE_DUPLICATED = "ledger_line_duplicated", "Ledger line duplicated at Stripe"
    LEDGER_AMOUNT_DIFFERS = "ledger_amount_differs", "Ledger amount differs at Stripe"
    PLAN_FEE_DIFFERS = "plan_fee_differs", "Plan fee differs from the catalog"
    PLAN_FEE_DUPLICATED = "plan_fee_duplicated", "Plan fee invoiced twice for a period"
    SUBSCRIPTION_WITHOUT_ACCOUNT = "subscription_without_account", "Stripe subscription without an account"
    ACCOUNT_WITHOUT_SUBSCRIPTION = "account_without_subscription", "Paying account without a subscription"
    STATUS_DRIFT = "status_drift", "Account status differs from its subscription"


class ReconciliationDifference(models.Model):
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="differences")
    account = models.ForeignKey("accounts.Account", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=40, choices=DifferenceKind.choices)
    stripe_id = models.CharField(max_length=255, blank=True)
    expected = models.CharField(max_length=120, blank=True)
    actual = models.CharField(max_length=120, blank=True)
    details = models.JSONField(default=dict, blank=True)
    healed = models.BooleanField(default=False, help_text="Fixed by a safe self-heal (re-sync or idempotent re-push).")

    class Meta:
        ordering = ["kind", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.stripe_id}"
