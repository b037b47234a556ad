"""Usage: periods (per account and subscription period), events (unique per account and key), rollups."""

from __future__ import annotations

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.db import models
from django.db.models import Func, Q
from django.utils import timezone


class UsagePeriodState(models.TextChoices):
    OPEN = "open", "Open"  # accepting events, its finality window included
    RATED = "rated", "Rated"  # closed: rated and its ledger entry written; late events are refused


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class UsagePeriod(models.Model):
    """One month of an account's usage, [start, end), anchored on its subscription's billing cycle anchor.

    Created by the first event booked to it. `plan_price` is the plan it is rated on: the highest-ranked
    plan the account held while the period was open (an upgrade mid-period raises it; see billing/usage/periods.py).
    `terms` are the metered terms it is rated on, snapshot when it opened (or when an upgrade raised it), so
    a catalog edit is never retroactive. An anchor move cuts `end` to the moment of the change; periods of
    an account never overlap (the exclusion constraint).
    """

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="usage_periods")
    start = models.DateTimeField()
    end = models.DateTimeField()
    subscription_id = models.CharField(max_length=255, help_text="The Stripe subscription the period is anchored on.")
    plan_price = models.ForeignKey("plans.PlanPrice", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=10, choices=UsagePeriodState.choices, default=UsagePeriodState.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    rated_at = models.DateTimeField(null=True, blank=True)
    # {"currency": "usd", "metrics": {metric: {"included": int, "unit_amount_cents": int, "unit_name": str}}}
    terms = models.JSONField(default=dict, blank=True)
    # Usage during a trial is counted, never billed: the period is rated "nothing due".
    trial = models.BooleanField(default=False)

    class Meta:
        ordering = ["-start"]
        constraints = [
            ExclusionConstraint(
                name="usage_period_no_overlap",
                expressions=[("account", RangeOperators.EQUAL), (TsTzRange("start", "end"), RangeOperators.OVERLAPS)],
            ),
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="usage_period_end_after_start"),
        ]
        indexes = [
            # The beat job's scan: open periods whose end is older than the finality window.
            models.Index(fields=["state", "end"], name="usage_period_state_end"),
            # Ingestion's lookup of the stored period containing an event (start <= occurred_at < end).
            models.Index(fields=["account", "start"], name="usage_period_account_start_at"),
        ]

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
        indexes = [
            # A cut moves the events after the cut moment to the period that contains them (periods.py).
            models.Index(fields=["period", "occurred_at"], name="usage_event_period_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} x{self.quantity} at {self.occurred_at:%Y-%m-%d %H:%M}"
