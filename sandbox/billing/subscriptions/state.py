"""Subscription state: lookups, the current period (kept on the items), the billing cycle, items.

Periods live on the items (``items.data[].current_period_start/end``), as in the modern API; every
item of a subscription shares one period. Hidden state in ``meta[sub_id]``: ``anchor`` (the
billing cycle anchor), ``k`` (index of the current period, ``[boundary(k), boundary(k+1)]``, or
``-1`` for a first period that ends at the anchor: a trial, or a future ``billing_cycle_anchor``),
``trial_will_end_sent``, ``upcoming_sent`` (period end for which ``invoice.upcoming`` went out).
"""

from __future__ import annotations

import copy

from sandbox.billing import periods
from sandbox.billing.pricing import is_metered, plan_of
from sandbox.core import errors, objects
from sandbox.core.store import Store

PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")


def get_subscription(store: Store, sub_id: str, param: str = "id") -> dict:
    return store.fetch("subscription", sub_id, param)


def get_item(store: Store, item_id: str, param: str = "id") -> tuple[dict, dict]:
    for sub in store.all("subscription"):
        for item in sub["items"]["data"]:
            if item["id"] == item_id:
                return sub, item
    raise errors.resource_missing("subscription_item", item_id, param)


def period(sub: dict) -> tuple[int, int]:
    item = sub["items"]["data"][0]
    return item["current_period_start"], item["current_period_end"]


def set_period(sub: dict, start: int, end: int) -> None:
    for item in sub["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = start, end


def interval_of(sub_or_prices) -> tuple[str, int]:
    price = sub_or_prices["items"]["data"][0]["price"] if isinstance(sub_or_prices, dict) else sub_or_prices[0]
    return price["recurring"]["interval"], price["recurring"]["interval_count"]


def boundary(store: Store, sub: dict, k: int) -> int:
    interval, count = interval_of(sub)
    return periods.boundary(store.meta_for(sub["id"])["anchor"], interval, count, k)


def check_prices(store: Store, entries: list[dict], currency: str | None = None) -> None:
    """All recurring, one currency, one interval (as Stripe requires of a subscription's items)."""
    intervals = set()
    for i, entry in enumerate(entries):
        price = entry["price"]
        if price["type"] != "recurring":
            raise errors.invalid_request(
                "The price specified is set to `type=one_time` but this field only accepts prices with "
                "`type=recurring`.",
                f"items[{i}][price]",
            )
        if not price["active"]:
            raise errors.invalid_request(
                "The price specified is inactive. This field only accepts active prices.", f"items[{i}][price]"
            )
        currency = currency or price["currency"]
        if price["currency"] != currency:
            raise errors.invalid_request(
                "All prices on a subscription must have the same currency.", f"items[{i}][price]"
            )
        if is_metered(price) and entry.get("quantity_given"):
            raise errors.invalid_request(
                "Quantity should not be specified where usage_type is `metered`. Remove quantity from `items`.",
                f"items[{i}][quantity]",
            )
        intervals.add((price["recurring"]["interval"], price["recurring"]["interval_count"]))
    if len(intervals) > 1:
        raise errors.invalid_request(
            "Currency and interval fields must match across all plans on this subscription.", "items"
        )


def resolve_items(store: Store, items: list[dict], prefix: str = "items") -> list[dict]:
    entries = []
    for i, raw in enumerate(items):
        if not raw.get("price"):
            raise errors.parameter_missing(f"{prefix}[{i}][price]")
        price = store.fetch("price", raw["price"], f"{prefix}[{i}][price]")
        quantity = raw.get("quantity")
        if quantity is not None and quantity < 0:
            raise errors.invalid_request("This value must be greater than or equal to 0.", f"{prefix}[{i}][quantity]")
        entries.append(
            {
                "price": price,
                "quantity": None if is_metered(price) else (1 if quantity is None else quantity),
                "quantity_given": quantity is not None,
                "metadata": raw.get("metadata") or {},
            }
        )
    return entries


def build_item(store: Store, sub_id: str, price: dict, quantity, metadata: dict, start: int, end: int) -> dict:
    return objects.build(
        "subscription_item",
        id=store.new_id("si", 14),
        billing_thresholds=None,
        created=start,
        current_period_end=end,
        current_period_start=start,
        discounts=[],
        metadata=dict(metadata),
        plan=plan_of(price),
        price=copy.deepcopy(price),
        quantity=quantity,
        subscription=sub_id,
        tax_rates=[],
    )


def next_period(store: Store, sub: dict) -> tuple[int, int, int]:
    """``(start, end, k)`` of the period after the current one."""
    k = store.meta_for(sub["id"])["k"]
    return boundary(store, sub, k + 1), boundary(store, sub, k + 2), k + 1
