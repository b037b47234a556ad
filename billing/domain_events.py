"""Billing's domain events (the catalogue: outbox/catalogue.py), each recorded in the transaction of the change it
reports, under a key naming that change once: a handler retried after it committed records nothing twice."""

from __future__ import annotations

import uuid

from accounts.models import Account
from billing.stripe.objects import invoice_subscription_id, stripe_id
from outbox.events import event_record

THRESHOLDS = (80, 100)  # percent of a period's allowance: usage.threshold_reached, once each per period and metric

# The subscription fields a consumer reacts to; a refresh that changes none of them is no event.
_WATCHED = ("status", "plan", "interval", "quantity", "cancel_at_period_end", "trial_end")


def invoice_paid_record(*, account: Account, invoice) -> None:
    event_record(
        type="invoice.paid",
        key=f"invoice.paid:{invoice['id']}",
        account_id=account.pk,
        data={
            "account": str(account.public_id),
            "invoice": invoice["id"],
            "amount_paid": invoice.get("amount_paid") or 0,
            "currency": invoice.get("currency"),
            "subscription": invoice_subscription_id(invoice),
        },
    )


def invoice_payment_failed_record(*, account: Account, invoice, attempt: int, decline_code: str) -> None:
    event_record(
        type="invoice.payment_failed",
        key=f"invoice.payment_failed:{invoice['id']}:{attempt}",
        account_id=account.pk,
        data={
            "account": str(account.public_id),
            "invoice": invoice["id"],
            "amount_due": invoice.get("amount_due") or 0,
            "currency": invoice.get("currency"),
            "attempt": attempt,
            "decline_code": decline_code or None,
        },
    )


def subscription_facts(data: dict | None) -> dict:
    """What consumers of subscription.changed see of a Stripe subscription (its first item: our plans have one)."""
    if not data:
        return {}
    item = ((data.get("items") or {}).get("data") or [{}])[0]
    price = item.get("price") or {}
    return {
        "status": data.get("status"),
        "plan": price.get("lookup_key") or stripe_id(price),
        "interval": (price.get("recurring") or {}).get("interval"),
        "quantity": item.get("quantity"),
        "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
        "trial_end": data.get("trial_end"),
    }


def subscription_changed_record(*, account: Account, data: dict, before: dict) -> None:
    """After the mirror's sync (under the customer's lock, so `before` is what the last sync applied)."""
    after = subscription_facts(data)
    changed = sorted(name for name in _WATCHED if before.get(name) != after.get(name))
    if not changed:
        return
    event_record(
        type="subscription.changed",
        # Once per move of the mirror: the refresh compares and records in one transaction under the customer's
        # lock, so a handler run again after it committed finds nothing changed; the key only has to be unique.
        key=f"subscription.changed:{data['id']}:{uuid.uuid4().hex}",
        account_id=account.pk,
        data={"account": str(account.public_id), "subscription": data["id"], **after, "changed": changed},
    )


def usage_thresholds_record(*, account_id: int, public_id: str, period, used: dict[str, int]) -> int:
    """usage.threshold_reached for each metric of `period` whose `used` units reached 80 % / 100 % of its
    allowance (the period's own terms): once per (period, metric, threshold) by the key. How many were new."""
    recorded = 0
    for metric, units in used.items():
        included = ((period.terms or {}).get("metrics") or {}).get(metric, {}).get("included") or 0
        if included <= 0:
            continue
        for percent in THRESHOLDS:
            if units * 100 < included * percent:
                break
            event = event_record(
                type="usage.threshold_reached",
                key=f"usage.threshold_reached:{public_id}:{period.start.isoformat()}:{metric}:{percent}",
                account_id=account_id,
                data={
                    "account": public_id,
                    "metric": metric,
                    "threshold_percent": percent,
                    "used": units,
                    "included": included,
                    "period_start": period.start.isoformat(),
                    "period_end": period.end.isoformat(),
                },
            )
            recorded += event is not None
    return recorded
