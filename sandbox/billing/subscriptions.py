"""Subscriptions and subscription items: create, update (with prorations), cancel, list; their endpoints.

Periods live on the items (``items.data[].current_period_start/end``), as in the modern API; every
item of a subscription shares one period. Hidden state in ``meta[sub_id]``: ``anchor`` (the
billing cycle anchor), ``k`` (index of the current period, ``[boundary(k), boundary(k+1)]``, or
``-1`` for a first period that ends at the anchor: a trial, or a future ``billing_cycle_anchor``),
``trial_will_end_sent``, ``upcoming_sent`` (period end for which ``invoice.upcoming`` went out).

:func:`create_subscription` is also what the hosted checkout page calls.
"""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_UP, Decimal

from sandbox import cards, errors, objects
from sandbox import params as P
from sandbox.billing import invoices, periods
from sandbox.events import emit, previous_attributes
from sandbox.resources import customers as customers_mod
from sandbox.resources import payment_methods
from sandbox.routing import ApiRequest, route
from sandbox.store import Store

PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
TIMES = "\u00d7"  # Stripe writes "2 {TIMES} Pro" in line descriptions


def get_subscription(store: Store, sub_id: str, param: str = "id") -> dict:
    sub = store.get("subscription", sub_id)
    if sub is None:
        raise errors.resource_missing("subscription", sub_id, param)
    return sub


def clock_of(sub: dict) -> str | None:
    return sub["test_clock"]


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


def _money(amount, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    value = f"{Decimal(str(amount)) / 100:.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def _describe(store: Store, price: dict, quantity: int) -> str:
    recurring = price["recurring"]
    count, interval = recurring["interval_count"], recurring["interval"]
    every = interval if count == 1 else f"{count} {interval}s"
    unit = _money(price["unit_amount_decimal"], price["currency"])
    return f"{quantity} {TIMES} {product_name(store, price)} (at {unit} / {every})"


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


def _check_prices(store: Store, entries: list[dict], currency: str | None = None) -> None:
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


def _resolve_items(store: Store, items: list[dict], prefix: str = "items") -> list[dict]:
    entries = []
    for i, raw in enumerate(items):
        if not raw.get("price"):
            raise errors.parameter_missing(f"{prefix}[{i}][price]")
        price = store.get("price", raw["price"])
        if price is None:
            raise errors.resource_missing("price", raw["price"], f"{prefix}[{i}][price]")
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


# charge specs for a period


def licensed_specs(store: Store, sub: dict, start: int, end: int, *, zero: bool = False, remaining=None) -> list:
    """One line per licensed item for ``[start, end]``; ``remaining=(seconds, period)`` prorates it."""
    specs = []
    for item in sub["items"]["data"]:
        price = item["price"]
        if is_metered(price):
            continue
        amount = amount_for(price, item["quantity"])
        description = _describe(store, price, item["quantity"])
        if zero:
            amount = 0
            description = f"Trial period for {product_name(store, price)}"
        elif remaining is not None:
            amount = periods.prorate(amount, *remaining)
            description = f"Remaining time on {description.split(' (at ')[0]} after {_date(start)}"
        specs.append(
            invoices.spec(
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
        unit = _money(price["unit_amount_decimal"], price["currency"])
        specs.append(
            invoices.spec(
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


# status changes


def _set_status(store: Store, sub: dict, status: str, **fields) -> None:
    before = copy.deepcopy(sub)
    sub["status"] = status
    sub.update(fields)
    changes = previous_attributes(before, sub)
    if changes:
        emit(store, "customer.subscription.updated", sub, changes, clock_id=clock_of(sub))


def cancel_now(store: Store, sub: dict, reason: str = "cancellation_requested", comment=None, feedback=None) -> dict:
    now = store.now(clock_of(sub))
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or now
    sub["ended_at"] = now
    sub["cancel_at_period_end"] = False
    sub["cancellation_details"] = {"comment": comment, "feedback": feedback, "reason": reason}
    for invoice in store.all("invoice"):
        if invoice["subscription"] == sub["id"] and invoice["status"] in ("draft", "open") and invoice["auto_advance"]:
            invoice["auto_advance"] = False
            invoice["next_payment_attempt"] = None
    emit(store, "customer.subscription.deleted", sub, clock_id=clock_of(sub))
    return sub


def on_invoice_paid(store: Store, invoice: dict) -> None:
    if not invoice["subscription"]:
        return
    sub = store.get("subscription", invoice["subscription"])
    if sub is None or sub["status"] not in ("incomplete", "past_due", "unpaid"):
        return
    # An older invoice paid: the subscription recovers only when no other invoice is still open.
    if (
        sub["latest_invoice"] != invoice["id"]
        and sub["status"] != "incomplete"
        and any(
            inv["subscription"] == sub["id"] and inv["status"] == "open" and inv["id"] != invoice["id"]
            for inv in store.all("invoice")
        )
    ):
        return
    now = store.now(clock_of(sub))
    _set_status(store, sub, "trialing" if sub["trial_end"] and now < sub["trial_end"] else "active")


def on_invoice_failed(store: Store, invoice: dict, final: bool) -> None:
    if not invoice["subscription"] or invoice["billing_reason"] == "subscription_create":
        return
    sub = store.get("subscription", invoice["subscription"])
    if sub is None or sub["status"] in ("canceled", "incomplete_expired"):
        return
    if sub["status"] in ("active", "trialing"):
        _set_status(store, sub, "past_due")
    if final:
        outcome = invoices.settings(store)["after_final_failure"]
        if outcome == "canceled":
            cancel_now(store, sub, "payment_failed")
        elif outcome == "unpaid":
            _set_status(store, sub, "unpaid")


# create


def create_subscription(
    store: Store,
    *,
    customer_id: str,
    items: list[dict],
    default_payment_method: str | None = None,
    trial_end: int | None = None,
    trial_period_days: int | None = None,
    trial_from_plan: bool = False,
    metadata: dict | None = None,
    payment_behavior: str = "allow_incomplete",
    proration_behavior: str = "create_prorations",
    cancel_at_period_end: bool = False,
    billing_cycle_anchor: int | None = None,
    description: str | None = None,
    trial_settings: dict | None = None,
    cancel_at: int | None = None,
) -> dict:
    """Create a subscription and its first invoice (finalized, and paid per ``payment_behavior``).

    ``items``: ``[{"price": "price_…", "quantity": 2, "metadata": {...}}]``. A trial gives status
    ``trialing`` and a 0 invoice. ``error_if_incomplete`` raises the card error when the first
    payment would fail, and creates nothing. Returns the stored subscription.
    """
    customer = customers_mod.get_customer(store, customer_id)
    clock = customer["test_clock"]
    now = store.now(clock)
    if not items:
        raise errors.parameter_missing("items")
    if payment_behavior not in PAYMENT_BEHAVIORS:
        raise errors.invalid_request(f"Invalid payment_behavior: {payment_behavior}", "payment_behavior")
    if proration_behavior not in PRORATION_BEHAVIORS:
        raise errors.invalid_request(f"Invalid proration_behavior: {proration_behavior}", "proration_behavior")
    entries = _resolve_items(store, items)
    _check_prices(store, entries)
    prices = [e["price"] for e in entries]
    interval, count = interval_of(prices)
    pm_id = None
    if default_payment_method:
        pm_id = payment_methods.payment_method_for_customer(
            store, default_payment_method, customer, "default_payment_method"
        )["id"]
    if trial_from_plan and trial_end is None and trial_period_days is None:
        days = [p["recurring"].get("trial_period_days") for p in prices if p["recurring"].get("trial_period_days")]
        trial_period_days = days[0] if days else None
    if trial_period_days is not None:
        trial_end = now + trial_period_days * periods.DAY if trial_period_days > 0 else None
    if trial_end is not None and trial_end <= now:
        raise errors.invalid_request("Invalid timestamp: must be an integer Unix timestamp in the future.", "trial_end")
    if billing_cycle_anchor is not None and billing_cycle_anchor < now:
        raise errors.invalid_request("billing_cycle_anchor cannot be in the past.", "billing_cycle_anchor")
    if trial_end is not None:
        anchor, k, start, end = trial_end, -1, now, trial_end
    elif billing_cycle_anchor is not None and billing_cycle_anchor > now:
        anchor, k, start, end = billing_cycle_anchor, -1, now, billing_cycle_anchor
    else:
        anchor, k, start = now, 0, now
        end = periods.boundary(anchor, interval, count, 1)
    currency = prices[0]["currency"]

    # The first invoice's lines, computed before anything is stored so a refused payment leaves no trace.
    sub_id = store.new_id("sub")
    sub = objects.build(
        "subscription",
        id=sub_id,
        application=None,
        application_fee_percent=None,
        automatic_tax={"enabled": False, "liability": None, "disabled_reason": None},
        billing_cycle_anchor=anchor,
        billing_cycle_anchor_config=None,
        billing_mode={"type": "classic", "flexible": None},
        billing_schedules=[],
        billing_thresholds=None,
        cancel_at=cancel_at,
        cancel_at_period_end=bool(cancel_at_period_end),
        canceled_at=None,
        cancellation_details={"comment": None, "feedback": None, "reason": None},
        collection_method="charge_automatically",
        created=now,
        currency=currency,
        customer=customer["id"],
        customer_account=None,
        days_until_due=None,
        default_payment_method=pm_id,
        default_source=None,
        default_tax_rates=[],
        description=description,
        discounts=[],
        ended_at=None,
        invoice_settings={"account_tax_ids": None, "issuer": {"type": "self"}},
        items={"object": "list", "data": [], "has_more": False, "url": f"/v1/subscription_items?subscription={sub_id}"},
        latest_invoice=None,
        livemode=False,
        managed_payments=None,
        metadata=dict(metadata or {}),
        next_pending_invoice_item_invoice=None,
        on_behalf_of=None,
        pause_collection=None,
        payment_settings={
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        pending_invoice_item_interval=None,
        pending_setup_intent=None,
        pending_update=None,
        schedule=None,
        start_date=now,
        status="trialing" if trial_end is not None else "incomplete",
        test_clock=clock,
        transfer_data=None,
        trial_end=trial_end,
        trial_settings={
            "end_behavior": {
                "missing_payment_method": ((trial_settings or {}).get("end_behavior") or {}).get(
                    "missing_payment_method"
                )
                or "create_invoice"
            }
        },
        trial_start=now if trial_end is not None else None,
    )
    if cancel_at_period_end:
        sub["cancel_at"] = end
    sub["items"]["data"] = [
        build_item(store, sub_id, e["price"], e["quantity"], e["metadata"], start, end) for e in entries
    ]
    if trial_end is not None:
        specs = licensed_specs(store, sub, start, end, zero=True)
    elif k == -1:
        full = anchor - periods.boundary(anchor, interval, count, -1)
        specs = licensed_specs(store, sub, start, end, zero=proration_behavior == "none", remaining=(end - start, full))
    else:
        specs = licensed_specs(store, sub, start, end)
    specs += metered_specs(store, sub, start, start) if trial_end is None else []
    specs += [invoices.spec_of_invoice_item(store, ii) for ii in invoices.pending_items(store, customer["id"], None)]

    total = sum(s["amount"] for s in specs) + customer["balance"]
    if payment_behavior == "error_if_incomplete" and total > 0:
        pay_with = pm_id or customer["invoice_settings"]["default_payment_method"]
        if pay_with is None:
            raise errors.StripeError(
                400,
                "This customer has no attached payment source or default payment method. Please consider adding "
                "a default payment method.",
                code="resource_missing",
            )
        outcome = cards.charge_outcome(store, store.get("payment_method", pay_with), off_session=False)
        if outcome.status == "declined":
            raise cards.decline_error(outcome.decline)
        if outcome.status == "requires_action":
            raise errors.card_error(
                "Your card was declined. This transaction requires authentication.",
                "subscription_payment_intent_requires_action",
            )

    meta = store.meta_for(sub_id)
    meta.update({"anchor": anchor, "k": k})
    store.insert(sub)
    emit(store, "customer.subscription.created", sub, clock_id=clock)
    invoice = invoices.create_invoice(
        store, customer, specs, billing_reason="subscription_create", subscription=sub, period=(now, now)
    )
    sub["latest_invoice"] = invoice["id"]
    invoices.finalize(store, invoice)
    if invoice["status"] == "open":
        if payment_behavior == "default_incomplete":
            pass  # Stripe waits for the client to confirm the invoice's payment; here: POST /v1/invoices/{id}/pay.
        else:
            invoices.attempt(store, invoice, off_session=False, retries=False)
    return sub


# prorations


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
                invoices.spec(
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


# endpoints

ITEM_PARAMS = {"price": str, "quantity": int, "metadata": P.METADATA, "tax_rates": P.ANY, "discounts": P.ANY}
CREATE_SCHEMA = {
    "customer": str,
    "items": P.ListOf(ITEM_PARAMS),
    "default_payment_method": str,
    "trial_end": P.ANY,
    "trial_period_days": int,
    "trial_from_plan": bool,
    "trial_settings": {"end_behavior": {"missing_payment_method": P.OneOf("create_invoice", "cancel", "pause")}},
    "metadata": P.METADATA,
    "payment_behavior": P.OneOf(*PAYMENT_BEHAVIORS),
    "proration_behavior": P.OneOf(*PRORATION_BEHAVIORS),
    "cancel_at_period_end": bool,
    "cancel_at": int,
    "billing_cycle_anchor": int,
    "collection_method": P.OneOf("charge_automatically"),
    "description": str,
    "off_session": bool,
    "payment_settings": P.ANY,
}


def _timestamp_or_now(value, name: str, now: int) -> int | None:
    if value is None:
        return None
    if value == "now":
        return now
    return P.coerce(value, int, name)


@route("POST", "/v1/subscriptions")
def create_endpoint(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    P.require(params, "customer", "items")
    customer = customers_mod.get_customer(store, params["customer"])
    trial_end = params.get("trial_end")
    if trial_end == "now":
        trial_end = None
    elif trial_end is not None:
        trial_end = P.coerce(trial_end, int, "trial_end")
    return create_subscription(
        store,
        customer_id=customer["id"],
        items=params["items"],
        default_payment_method=params.get("default_payment_method"),
        trial_end=trial_end,
        trial_period_days=params.get("trial_period_days"),
        trial_from_plan=bool(params.get("trial_from_plan")),
        metadata=params.get("metadata"),
        payment_behavior=params.get("payment_behavior") or "allow_incomplete",
        proration_behavior=params.get("proration_behavior") or "create_prorations",
        cancel_at_period_end=bool(params.get("cancel_at_period_end")),
        cancel_at=params.get("cancel_at"),
        billing_cycle_anchor=params.get("billing_cycle_anchor"),
        description=params.get("description"),
        trial_settings=params.get("trial_settings"),
    )


@route("GET", "/v1/subscriptions/<sub_id>")
def retrieve_endpoint(req: ApiRequest, sub_id: str) -> dict:
    req.validate({})
    return get_subscription(req.store, sub_id)
