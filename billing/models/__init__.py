"""Billing's own models (dj-stripe's are the mirror of Stripe), one module per area; all re-exported here."""

from billing.models.checkout import CheckoutAttempt, CheckoutStatus
from billing.models.dunning import (
    DUNNING_UNPAID_STATUSES,
    DunningCase,
    DunningNotice,
    DunningNoticeKind,
    DunningPolicy,
    DunningStatus,
)
from billing.models.ledger import LedgerEntry, LedgerKind, LedgerState
from billing.models.notices import Receipt, Reminder, ReminderKind
from billing.models.plan_changes import PlanChangeStatus, ScheduledPlanChange
from billing.models.reconciliation import DifferenceKind, ReconciliationDifference, ReconciliationRun
from billing.models.stripe_events import HandlingStatus, StripeEvent, StripeEventHandling
from billing.models.usage import UsageEvent, UsagePeriod, UsagePeriodState, UsageRollup

__all__ = [
    "DUNNING_UNPAID_STATUSES",
    "CheckoutAttempt",
    "CheckoutStatus",
    "DifferenceKind",
    "DunningCase",
    "DunningNotice",
    "DunningNoticeKind",
    "DunningPolicy",
    "DunningStatus",
    "HandlingStatus",
    "LedgerEntry",
    "LedgerKind",
    "LedgerState",
    "PlanChangeStatus",
    "Receipt",
    "ReconciliationDifference",
    "ReconciliationRun",
    "Reminder",
    "ReminderKind",
    "ScheduledPlanChange",
    "StripeEvent",
    "StripeEventHandling",
    "UsageEvent",
    "UsagePeriod",
    "UsagePeriodState",
    "UsageRollup",
]
