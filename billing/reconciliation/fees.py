"""Plan fee checks: what Stripe invoiced for the plan against the catalog, once per period."""

from __future__ import annotations

from collections import Counter

from accounts.models import Account
from billing.models import DifferenceKind
from billing.reconciliation.record import difference_record
from billing.stripe.objects import stripe_id


def _line_price(line) -> str | None:
    pricing = line.get("pricing") or {}
    price = (pricing.get("price_details") or {}).get("price") or line.get("price")
    return stripe_id(price)


def _is_plan_fee(line) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or {}
    return parent.get("type") == "subscription_item_details" and not details.get("proration")


def check_plan_fees(run, account: Account, invoices: list, prices: dict) -> None:
    """Each plan fee Stripe invoiced is the catalog's amount x quantity, once per price and period."""
    periods = Counter()
    for invoice in invoices:
        if invoice.get("status") not in ("open", "paid"):
            continue
        for line in invoice["lines"]["data"]:
            if not _is_plan_fee(line):
                continue
            if line["amount"] == 0 and invoice.get("billing_reason") == "subscription_create":
                continue  # the first invoice of a trial: nothing is due for the trial's period
            price_id = _line_price(line)
            plan_price = prices.get(price_id)
            if plan_price is None:
                continue  # a metered or legacy price: not a plan fee of the catalog
            expected = plan_price.amount_cents * (line.get("quantity") or 1)
            if line["amount"] != expected:
                difference_record(
                    run,
                    account,
                    DifferenceKind.PLAN_FEE_DIFFERS,
                    stripe_id=invoice["id"],
                    expected=expected,
                    actual=line["amount"],
                    details={"price": price_id, "line": line["id"]},
                )
            periods[(price_id, line["period"]["start"])] += 1
    for (price_id, start), count in periods.items():
        if count > 1:
            difference_record(
                run,
                account,
                DifferenceKind.PLAN_FEE_DUPLICATED,
                stripe_id=price_id,
                expected=1,
                actual=count,
                details={"period_start": start},
            )
