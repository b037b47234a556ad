"""The charge specs a subscription invoices: licensed items for a period, metered usage, prorations,
pending invoice items, and the lines of a renewal."""

from __future__ import annotations

from sandbox.billing import periods
from sandbox.billing.invoices import drafts
from sandbox.billing.pricing import TIMES, amount_for, describe, is_metered, money, product_name
from sandbox.billing.subscriptions.state import period
from sandbox.core.store import Store


def licensed_specs(store: Store, sub: dict, start: int, end: int, *, zero: bool = False, remaining=None) -> list:
    """One line per licensed item for ``[start, end]``; ``remaining=(seconds, period)`` prorates it."""
    specs = []
    for item in sub["items"]["data"]:
        price = item["price"]
        if is_metered(price):
            continue
        amount = amount_for(price, item["quantity"])
        description = describe(store, price, item["quantity"])
        if zero:
            amount = 0
            description = f"Trial period for {product_name(store, price)}"
        elif remaining is not None:
            amount = periods.prorate(amount, *remaining)
            description = f"Remaining time on {description.split(' (at ')[0]} after {_date(start)}"
        specs.append(
            drafts.spec(
                amount=amount,
                currency=price["currency"],
                description=description,
                period={"start": start, "end": end},
                quantity=item["quantity"],
                price=price,
                subscription=sub["id"],
                subscription_item=item["id"],
            )
        )
    return specs


def metered_specs(store: Store, sub: dict, start: int, end: int) -> list:
    """One line per metered item with the usage its meter summed over ``[start, end)``."""
    from sandbox.billing import meters

    specs = []
    for item in sub["items"]["data"]:
        price = item["price"]
        if not is_metered(price):
            continue
        usage = meters.usage(store, price["recurring"]["meter"], sub["customer"], start, end)
        unit = money(price["unit_amount_decimal"], price["currency"])
        specs.append(
            drafts.spec(
                amount=amount_for(price, usage),
                currency=price["currency"],
                description=f"{usage} {TIMES} {product_name(store, price)} (at {unit} / unit)",
                period={"start": start, "end": end},
                quantity=usage,
                price=price,
                subscription=sub["id"],
                subscription_item=item["id"],
            )
        )
    return specs


def _date(timestamp: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%d %b %Y")


def pending_specs(store: Store, sub: dict) -> list[dict]:
    """Charge specs of the pending invoice items a subscription's next invoice takes."""
    return drafts.pending_specs(store, sub["customer"], sub["id"])


def proration_specs(store: Store, sub: dict, changes: list[tuple], at: int) -> list[dict]:
    """Credit for unused time and charge for remaining time, for each ``(item, old, new)`` change.

    ``old``/``new`` are ``(price, quantity)`` or None (an added / deleted item). Amounts follow Stripe:
    ``round(unit_amount * quantity * remaining_seconds / period_seconds)``.
    """
    start, end = period(sub)
    if sub["status"] == "trialing" or at >= end:
        return []
    remaining, length = end - max(at, start), end - start
    specs = []
    for item_id, old, new in changes:
        for side, sign, word in ((old, -1, "Unused"), (new, 1, "Remaining")):
            if side is None:
                continue
            price, quantity = side
            if is_metered(price):
                continue
            amount = sign * periods.prorate(amount_for(price, quantity), remaining, length)
            specs.append(
                drafts.spec(
                    amount=amount,
                    currency=price["currency"],
                    description=f"{word} time on {quantity} {TIMES} {product_name(store, price)} after {_date(at)}",
                    period={"start": at, "end": end},
                    quantity=quantity,
                    price=price,
                    proration=True,
                    subscription=sub["id"],
                    subscription_item=item_id,
                )
            )
    return specs


def renewal_specs(store: Store, sub: dict, old: tuple[int, int], new: tuple[int, int], *, was_trial: bool) -> list:
    """The lines of the invoice at the end of period ``old``: pending items, next period, metered usage."""
    specs = pending_specs(store, sub) + licensed_specs(store, sub, *new)
    if not was_trial:
        specs += metered_specs(store, sub, *old)
    return specs
