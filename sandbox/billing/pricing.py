"""Prices as billing reads them: amounts, the legacy ``plan`` view, line descriptions (used by all of billing)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sandbox.core.store import Store

TIMES = "\u00d7"  # Stripe writes "2 {TIMES} Pro" in line descriptions


def plan_of(price: dict) -> dict:
    """The legacy ``plan`` view of a recurring price, as Stripe still embeds it on items."""
    recurring = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": price["metadata"],
        "meter": recurring.get("meter"),
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


def amount_for(price: dict, quantity: int) -> int:
    value = Decimal(price["unit_amount_decimal"]) * quantity
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def is_metered(price: dict) -> bool:
    return (price["recurring"] or {}).get("usage_type") == "metered"


def product_name(store: Store, price: dict) -> str:
    product = store.get("product", price["product"])
    return product["name"] if product else price["product"]


def money(amount, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    value = f"{Decimal(str(amount)) / 100:.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def describe(store: Store, price: dict, quantity: int) -> str:
    recurring = price["recurring"]
    count, interval = recurring["interval_count"], recurring["interval"]
    every = interval if count == 1 else f"{count} {interval}s"
    unit = money(price["unit_amount_decimal"], price["currency"])
    return f"{quantity} {TIMES} {product_name(store, price)} (at {unit} / {every})"
