"""The catalogue of our domain events: each type with its version and what its `data` holds.

A receiver reads `type` and `api_version` (the version below) to know the shape. A change that removes or renames
a field is a new version; adding a field is not. Every event's data carries `account` (the account's public id).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    description: str
    fields: tuple[str, ...]


CATALOGUE: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType(
            "account.activated",
            1,
            "A trialing account started paying.",
            ("account", "status", "previous_status", "reason"),
        ),
        EventType(
            "account.suspended",
            1,
            "An account lost access: a payment overdue, a trial ended without a plan, a chargeback.",
            ("account", "status", "previous_status", "reason"),
        ),
        EventType(
            "account.reactivated",
            1,
            "A suspended, past-due, blocked or closed account is active again.",
            ("account", "status", "previous_status", "reason"),
        ),
        EventType(
            "subscription.changed",
            1,
            "The subscription's plan, interval, seats, status, cancellation or trial changed at Stripe.",
            ("account", "subscription", "status", "plan", "interval", "quantity", "cancel_at_period_end", "changed"),
        ),
        EventType(
            "invoice.paid", 1, "An invoice was paid.", ("account", "invoice", "amount_paid", "currency", "subscription")
        ),
        EventType(
            "invoice.payment_failed",
            1,
            "A payment attempt of an invoice failed (one event per attempt).",
            ("account", "invoice", "amount_due", "currency", "attempt", "decline_code"),
        ),
        EventType(
            "usage.threshold_reached",
            1,
            "A metric's usage in a billing period reached 80 % or 100 % of the plan's allowance (once each a period).",
            ("account", "metric", "threshold_percent", "used", "included", "period_start", "period_end"),
        ),
        EventType(
            "fraud.review_opened",
            1,
            "A fraud check put the account on hold for a review by ops.",
            ("account", "stage", "decision", "assessment"),
        ),
    )
}
