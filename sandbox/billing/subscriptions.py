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

from sandbox.billing import periods
from sandbox.billing import settings as billing_settings
from sandbox.billing.invoices import collect, drafts
from sandbox.billing.invoices import items as invoice_items
from sandbox.billing.pricing import TIMES, amount_for, describe, is_metered, money, plan_of, product_name
from sandbox.core import errors, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.payments import cards
from sandbox.resources import customers as customers_mod
from sandbox.resources import payment_methods

PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")


def get_subscription(store: Store, sub_id: str, param: str = "id") -> dict:
    sub = store.get("subscription", sub_id)
    if sub is None:
        raise errors.resource_missing("subscription", sub_id, param)
    return sub


def clock_of(sub: dict) -> str | None:
    return sub["test_clock"]


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
        outcome = billing_settings.settings(store)["after_final_failure"]
        if outcome == "canceled":
            cancel_now(store, sub, "payment_failed")
        elif outcome == "unpaid":
            _set_status(store, sub, "unpaid")


# Invoices call subscriptions back through these hooks (they do not import subscriptions).
collect.invoice_paid_hooks.append(on_invoice_paid)
collect.invoice_failed_hooks.append(on_invoice_failed)


def invoice_and_collect(
    store: Store,
    sub: dict,
    specs: list[dict],
    billing_reason: str,
    *,
    off_session: bool,
    retries: bool = True,
    collect_now: bool = True,
    **invoice_fields,
) -> dict:
    """Invoice ``specs`` for ``sub`` now: the draft becomes its latest invoice, is finalized and (if still
    open and ``collect_now``) charged."""
    customer = store.get("customer", sub["customer"])
    invoice = drafts.create_invoice(
        store, customer, specs, billing_reason=billing_reason, subscription=sub, **invoice_fields
    )
    sub["latest_invoice"] = invoice["id"]
    if collect_now:
        collect.finalize_and_collect(store, invoice, off_session=off_session, retries=retries)
    else:
        collect.finalize(store, invoice)
    return invoice


def pending_specs(store: Store, sub: dict) -> list[dict]:
    """Charge specs of the pending invoice items a subscription's next invoice takes."""
    return [drafts.spec_of_invoice_item(store, ii) for ii in drafts.pending_items(store, sub["customer"], sub["id"])]


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
    specs += [drafts.spec_of_invoice_item(store, ii) for ii in drafts.pending_items(store, customer["id"], None)]

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
    # default_incomplete: Stripe waits for the client to confirm the invoice's payment; here POST /v1/invoices/{id}/pay.
    invoice_and_collect(
        store,
        sub,
        specs,
        "subscription_create",
        off_session=False,
        retries=False,
        collect_now=payment_behavior != "default_incomplete",
        period=(now, now),
    )
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


# update


def plan_item_changes(store: Store, sub: dict, items: list[dict] | None, prefix: str = "items"):
    """What ``items`` (update params) would make of the subscription's items.

    Returns ``(entries, changes)``: ``entries`` the resulting items as dicts (``id`` None for a new one,
    ``price``, ``quantity``, ``metadata``) and ``changes`` the ``(item_id, old, new)`` tuples prorated.
    """
    current = {item["id"]: item for item in sub["items"]["data"]}
    entries = [
        {"id": item["id"], "price": item["price"], "quantity": item["quantity"], "metadata": item["metadata"]}
        for item in sub["items"]["data"]
    ]
    changes = []
    for i, raw in enumerate(items or []):
        name = f"{prefix}[{i}]"
        if raw.get("id"):
            if raw["id"] not in current:
                raise errors.invalid_request(
                    f"Invalid {name}[id]: the subscription has no item {raw['id']}.", f"{name}[id]"
                )
            entry = next(e for e in entries if e["id"] == raw["id"])
            old = (entry["price"], entry["quantity"])
            if raw.get("deleted"):
                entries.remove(entry)
                changes.append((entry["id"], old, None))
                continue
            if raw.get("price"):
                price = store.get("price", raw["price"])
                if price is None:
                    raise errors.resource_missing("price", raw["price"], f"{name}[price]")
                entry["price"] = price
                if is_metered(price):
                    entry["quantity"] = None
                elif entry["quantity"] is None:
                    entry["quantity"] = 1
            if raw.get("quantity") is not None:
                entry["quantity"] = raw["quantity"]
            if raw.get("metadata") is not None:
                entry["metadata"] = P.apply_metadata(entry["metadata"], raw["metadata"])
            new = (entry["price"], entry["quantity"])
            if new[0]["id"] != old[0]["id"] or new[1] != old[1]:
                changes.append((entry["id"], old, new))
        else:
            if raw.get("deleted"):
                raise errors.parameter_missing(f"{name}[id]")
            (resolved,) = _resolve_items(store, [raw], prefix)
            resolved["id"] = None
            entries.append(resolved)
            changes.append((None, None, (resolved["price"], resolved["quantity"])))
    if not entries:
        raise errors.invalid_request("A subscription must have at least one item.", prefix)
    _check_prices(store, entries, sub["currency"])
    return entries, changes


def _apply_entries(store: Store, sub: dict, entries: list[dict]) -> None:
    start, end = period(sub)
    existing = {item["id"]: item for item in sub["items"]["data"]}
    items = []
    for entry in entries:
        if entry["id"]:
            item = existing[entry["id"]]
            if item["price"]["id"] != entry["price"]["id"]:
                item["price"] = copy.deepcopy(entry["price"])
                item["plan"] = plan_of(entry["price"])
            item["quantity"] = entry["quantity"]
            item["metadata"] = dict(entry["metadata"])
        else:
            item = build_item(store, sub["id"], entry["price"], entry["quantity"], entry["metadata"], start, end)
            item["created"] = store.now(clock_of(sub))
            entry["id"] = item["id"]
        items.append(item)
    sub["items"]["data"] = items


def _prorations_to_items(store: Store, sub: dict, specs: list[dict]) -> list[dict]:
    customer = store.get("customer", sub["customer"])
    created = []
    for s in specs:
        created.append(
            invoice_items.create_invoice_item(
                store,
                customer,
                {
                    "_price": s["price"],
                    "amount": s["amount"],
                    "quantity": s["quantity"],
                    "description": s["description"],
                    "period": s["period"],
                    "subscription": sub["id"],
                    "_proration": True,
                    "_subscription_item": s["subscription_item"],
                },
            )
        )
    return created


def _precheck_payment(store: Store, customer: dict, pm_id: str | None) -> None:
    """For ``error_if_incomplete``: raise the error the payment would fail with, before changing anything."""
    if pm_id is None:
        raise errors.StripeError(
            400, "This customer has no attached payment source or default payment method.", code="resource_missing"
        )
    outcome = cards.charge_outcome(store, store.get("payment_method", pm_id), off_session=False)
    if outcome.status == "declined":
        raise cards.decline_error(outcome.decline)
    if outcome.status == "requires_action":
        raise errors.card_error(
            "Your card was declined. This transaction requires authentication.",
            "subscription_payment_intent_requires_action",
        )


def invoice_now(store: Store, sub: dict, billing_reason: str, *, off_session: bool = False) -> dict | None:
    """Invoice the subscription's pending items now (finalized and charged); None if there are none."""
    specs = pending_specs(store, sub)
    if not specs:
        return None
    return invoice_and_collect(store, sub, specs, billing_reason, off_session=off_session)


def update_subscription(store: Store, sub: dict, params: dict) -> dict:
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise errors.state_error(
            "A canceled subscription can only update its cancellation_details and metadata.", code="resource_missing"
        )
    clock = clock_of(sub)
    now = store.now(clock)
    customer = store.get("customer", sub["customer"])
    before = copy.deepcopy(sub)
    behavior = params.get("proration_behavior") or "create_prorations"
    at = params.get("proration_date") or now
    entries, changes = plan_item_changes(store, sub, params.get("items"))
    pm_id = sub["default_payment_method"]
    if params.get("default_payment_method"):
        pm_id = payment_methods.payment_method_for_customer(
            store, params["default_payment_method"], customer, "default_payment_method"
        )["id"]
    trial_end = params.get("trial_end")
    if trial_end == "now":
        trial_end = now
    elif trial_end is not None:
        trial_end = P.coerce(trial_end, int, "trial_end")
    new_interval = interval_of([e["price"] for e in entries])
    interval_changed = changes and new_interval != interval_of(sub)
    specs = []
    if changes and not interval_changed and behavior != "none":
        specs = proration_specs(store, sub, changes, at)
    charge_now = (behavior == "always_invoice" and specs) or interval_changed or trial_end == now
    if params.get("payment_behavior") == "error_if_incomplete" and charge_now:
        _precheck_payment(store, customer, pm_id or customer["invoice_settings"]["default_payment_method"])

    if "default_payment_method" in params:
        sub["default_payment_method"] = pm_id if params["default_payment_method"] else None
    if "metadata" in params:
        sub["metadata"] = P.apply_metadata(sub["metadata"], params["metadata"])
    if "description" in params:
        sub["description"] = params["description"]
    if params.get("cancel_at_period_end") is not None:
        sub["cancel_at_period_end"] = params["cancel_at_period_end"]
        sub["cancel_at"] = period(sub)[1] if params["cancel_at_period_end"] else None
        if not params["cancel_at_period_end"]:
            sub["canceled_at"] = None
        else:
            sub["canceled_at"] = now
    if "cancel_at" in params:
        sub["cancel_at"] = params["cancel_at"]
        sub["cancel_at_period_end"] = bool(params["cancel_at"] and params["cancel_at"] == period(sub)[1])
    if "cancellation_details" in params:
        sub["cancellation_details"] = {
            "comment": None,
            "feedback": None,
            "reason": None,
            **params["cancellation_details"],
        }

    if interval_changed:
        # A new interval resets the billing cycle to now: credit the unused time, charge a full new period.
        credits = (
            [] if behavior == "none" else proration_specs(store, sub, [(i, o, None) for i, o, _ in changes if o], at)
        )
        _prorations_to_items(store, sub, credits)
        _apply_entries(store, sub, entries)
        _reset_cycle(store, sub, now)
        _invoice_new_period(store, sub, "subscription_update")
    elif trial_end is not None and sub["status"] == "trialing":
        _apply_entries(store, sub, entries)
        if trial_end == now:
            sub["trial_end"] = now
            _reset_cycle(store, sub, now)
            sub["status"] = "active"
            _invoice_new_period(store, sub, "subscription_update")
        else:
            sub["trial_end"] = trial_end
            store.meta_for(sub["id"])["anchor"] = trial_end
            set_period(sub, period(sub)[0], trial_end)
    else:
        created_items = _prorations_to_items(store, sub, specs) if specs else []
        _apply_entries(store, sub, entries)
        if behavior == "always_invoice" and created_items:
            invoice_now(store, sub, "subscription_update")
    changes_seen = previous_attributes(before, sub)
    if changes_seen:
        emit(store, "customer.subscription.updated", sub, changes_seen, clock_id=clock)
    return sub


def _reset_cycle(store: Store, sub: dict, now: int) -> None:
    interval, count = interval_of(sub)
    meta = store.meta_for(sub["id"])
    meta.update({"anchor": now, "k": 0})
    sub["billing_cycle_anchor"] = now
    set_period(sub, now, periods.boundary(now, interval, count, 1))


def _invoice_new_period(store: Store, sub: dict, billing_reason: str) -> dict:
    start, end = period(sub)
    specs = pending_specs(store, sub) + licensed_specs(store, sub, start, end)
    return invoice_and_collect(store, sub, specs, billing_reason, off_session=False)


def renewal_specs(store: Store, sub: dict, old: tuple[int, int], new: tuple[int, int], *, was_trial: bool) -> list:
    """The lines of the invoice at the end of period ``old``: pending items, next period, metered usage."""
    customer_id = sub["customer"]
    specs = [drafts.spec_of_invoice_item(store, ii) for ii in drafts.pending_items(store, customer_id, sub["id"])]
    specs += licensed_specs(store, sub, *new)
    if not was_trial:
        specs += metered_specs(store, sub, *old)
    return specs


def next_period(store: Store, sub: dict) -> tuple[int, int, int]:
    """``(start, end, k)`` of the period after the current one."""
    k = store.meta_for(sub["id"])["k"]
    return boundary(store, sub, k + 1), boundary(store, sub, k + 2), k + 1


def cancel_subscription(store: Store, sub: dict, params: dict) -> dict:
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise errors.state_error(
            f"No such subscription: '{sub['id']}'; it has already been canceled.", code="resource_missing"
        )
    now = store.now(clock_of(sub))
    details = params.get("cancellation_details") or {}
    if params.get("prorate") and sub["status"] not in ("trialing", "incomplete"):
        changes = [(item["id"], (item["price"], item["quantity"]), None) for item in sub["items"]["data"]]
        _prorations_to_items(store, sub, proration_specs(store, sub, changes, now))
    if params.get("invoice_now") and sub["status"] not in ("incomplete",):
        start, _ = period(sub)
        specs = pending_specs(store, sub)
        if sub["status"] != "trialing":
            specs += metered_specs(store, sub, start, now + 1)
        if specs:
            invoice_and_collect(store, sub, specs, "subscription_cycle", off_session=True, retries=False)
    return cancel_now(store, sub, "cancellation_requested", details.get("comment"), details.get("feedback"))


UPDATE_ITEM_PARAMS = {
    "id": str,
    "price": str,
    "quantity": int,
    "deleted": bool,
    "clear_usage": bool,
    "metadata": P.METADATA,
    "tax_rates": P.ANY,
    "discounts": P.ANY,
}
UPDATE_SCHEMA = {
    "items": P.ListOf(UPDATE_ITEM_PARAMS),
    "proration_behavior": P.OneOf(*PRORATION_BEHAVIORS),
    "proration_date": int,
    "payment_behavior": P.OneOf(*PAYMENT_BEHAVIORS),
    "cancel_at_period_end": bool,
    "cancel_at": int,
    "cancellation_details": {"comment": str, "feedback": str},
    "metadata": P.METADATA,
    "default_payment_method": str,
    "description": str,
    "trial_end": P.ANY,
    "off_session": bool,
    "billing_cycle_anchor": P.OneOf("now", "unchanged"),
    "collection_method": P.OneOf("charge_automatically"),
    "payment_settings": P.ANY,
}


@route("POST", "/v1/subscriptions/<sub_id>")
def update_endpoint(req: ApiRequest, sub_id: str) -> dict:
    params = req.validate(UPDATE_SCHEMA)
    return update_subscription(req.store, get_subscription(req.store, sub_id), params)


@route("DELETE", "/v1/subscriptions/<sub_id>")
def cancel_endpoint(req: ApiRequest, sub_id: str) -> dict:
    params = req.validate(
        {"invoice_now": bool, "prorate": bool, "cancellation_details": {"comment": str, "feedback": str}}
    )
    return cancel_subscription(req.store, get_subscription(req.store, sub_id), params)


@route("GET", "/v1/subscriptions")
def list_endpoint(req: ApiRequest) -> dict:
    from sandbox.core import listing

    params = req.validate(
        {
            **listing.LIST_PARAMS,
            "customer": str,
            "price": str,
            "status": P.OneOf(
                "active",
                "all",
                "canceled",
                "ended",
                "incomplete",
                "incomplete_expired",
                "past_due",
                "paused",
                "trialing",
                "unpaid",
            ),
            "test_clock": str,
            "collection_method": str,
            "current_period_end": P.ANY,
            "current_period_start": P.ANY,
        }
    )
    status = params.get("status")
    created = listing.created_filter(params.get("created"))

    def matches(sub: dict) -> bool:
        if params.get("customer") and sub["customer"] != params["customer"]:
            return False
        if params.get("test_clock") and sub["test_clock"] != params["test_clock"]:
            return False
        if params.get("price") and all(item["price"]["id"] != params["price"] for item in sub["items"]["data"]):
            return False
        if status is None and sub["status"] in ("canceled", "incomplete_expired"):
            return False
        if status == "ended" and sub["status"] not in ("canceled", "incomplete_expired"):
            return False
        if status not in (None, "all", "ended") and sub["status"] != status:
            return False
        return created(sub)

    return listing.paginate(params, filter(matches, req.store.all("subscription")), "/v1/subscriptions")


# subscription items


@route("GET", "/v1/subscription_items")
def list_items(req: ApiRequest) -> dict:
    from sandbox.core import listing

    params = req.validate({**listing.LIST_PARAMS, "subscription": str})
    P.require(params, "subscription")
    sub = get_subscription(req.store, params["subscription"], "subscription")
    return listing.paginate(
        params, list(reversed(sub["items"]["data"])), f"/v1/subscription_items?subscription={sub['id']}"
    )


@route("GET", "/v1/subscription_items/<item_id>")
def retrieve_item(req: ApiRequest, item_id: str) -> dict:
    req.validate({})
    return get_item(req.store, item_id)[1]


ITEM_UPDATE_SCHEMA = {
    "price": str,
    "quantity": int,
    "metadata": P.METADATA,
    "proration_behavior": P.OneOf(*PRORATION_BEHAVIORS),
    "proration_date": int,
    "payment_behavior": P.OneOf(*PAYMENT_BEHAVIORS),
    "off_session": bool,
    "tax_rates": P.ANY,
    "discounts": P.ANY,
}


def _item_change(req: ApiRequest, sub: dict, item_change: dict, params: dict) -> dict:
    update = {"items": [item_change]}
    for key in ("proration_behavior", "proration_date", "payment_behavior"):
        if params.get(key) is not None:
            update[key] = params[key]
    return update_subscription(req.store, sub, update)


@route("POST", "/v1/subscription_items")
def create_item(req: ApiRequest) -> dict:
    params = req.validate({**ITEM_UPDATE_SCHEMA, "subscription": str})
    P.require(params, "subscription", "price")
    sub = get_subscription(req.store, params["subscription"], "subscription")
    known = {item["id"] for item in sub["items"]["data"]}
    change = {k: params[k] for k in ("price", "quantity", "metadata") if params.get(k) is not None}
    _item_change(req, sub, change, params)
    return next(item for item in sub["items"]["data"] if item["id"] not in known)


@route("POST", "/v1/subscription_items/<item_id>")
def update_item(req: ApiRequest, item_id: str) -> dict:
    params = req.validate(ITEM_UPDATE_SCHEMA)
    sub, _ = get_item(req.store, item_id)
    change = {"id": item_id, **{k: params[k] for k in ("price", "quantity", "metadata") if params.get(k) is not None}}
    _item_change(req, sub, change, params)
    return get_item(req.store, item_id)[1]


@route("DELETE", "/v1/subscription_items/<item_id>")
def delete_item(req: ApiRequest, item_id: str) -> dict:
    params = req.validate(
        {"proration_behavior": P.OneOf(*PRORATION_BEHAVIORS), "proration_date": int, "clear_usage": bool}
    )
    sub, _ = get_item(req.store, item_id)
    _item_change(req, sub, {"id": item_id, "deleted": True}, params)
    return objects.deleted("subscription_item", item_id)


# previews


PREVIEW_SCHEMA = {
    "customer": str,
    "subscription": str,
    "subscription_details": {
        "items": P.ListOf(UPDATE_ITEM_PARAMS),
        "proration_date": int,
        "proration_behavior": P.OneOf(*PRORATION_BEHAVIORS),
        "cancel_at_period_end": bool,
        "trial_end": P.ANY,
        "billing_cycle_anchor": P.ANY,
        "start_date": int,
        "default_tax_rates": P.ANY,
    },
    "automatic_tax": P.ANY,
    "currency": str,
    "preview_mode": P.OneOf("next", "recurring"),
}


@route("POST", "/v1/invoices/create_preview")
def create_preview(req: ApiRequest) -> dict:
    params = req.validate(PREVIEW_SCHEMA)
    store = req.store
    details = params.get("subscription_details") or {}
    sub = get_subscription(store, params["subscription"], "subscription") if params.get("subscription") else None
    customer_id = params.get("customer") or (sub["customer"] if sub else None)
    if customer_id is None:
        raise errors.parameter_missing("customer")
    customer = customers_mod.get_customer(store, customer_id)
    now = store.now(customer["test_clock"])
    if sub is None and not details.get("items"):
        # A customer alone: the next invoice of their subscription renewing first, as ``upcoming`` did.
        live = [
            s
            for s in store.all("subscription")
            if s["customer"] == customer["id"] and s["status"] not in ("canceled", "incomplete_expired")
        ]
        if live:
            sub = min(live, key=lambda s: period(s)[1])
    if sub is None:
        if not details.get("items"):
            pending = drafts.pending_items(store, customer["id"], None)
            if not pending:
                raise errors.invalid_request("Nothing to invoice for customer", code="invoice_upcoming_none")
            specs = [drafts.spec_of_invoice_item(store, ii) for ii in pending]
            return drafts.build_invoice(store, customer, specs, billing_reason="manual", preview=True)
        entries = _resolve_items(store, details["items"], "subscription_details[items]")
        _check_prices(store, entries)
        interval, count = interval_of([e["price"] for e in entries])
        draft = {"id": None, "customer": customer["id"], "metadata": {}, "items": {"data": []}}
        end = periods.boundary(now, interval, count, 1)
        draft["items"]["data"] = [{"id": None, "price": e["price"], "quantity": e["quantity"]} for e in entries]
        specs = [drafts.spec_of_invoice_item(store, ii) for ii in drafts.pending_items(store, customer["id"], None)]
        specs = licensed_specs(store, draft, now, end) + specs
        return drafts.build_invoice(store, customer, specs, billing_reason="subscription_create", preview=True)
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise errors.invalid_request("No upcoming invoices for a canceled subscription.", code="invoice_upcoming_none")
    behavior = details.get("proration_behavior") or "create_prorations"
    at = details.get("proration_date") or now
    entries, changes = plan_item_changes(store, sub, details.get("items"), "subscription_details[items]")
    hypothetical = copy.deepcopy(sub)
    hypothetical["items"]["data"] = [
        {
            **(next((i for i in sub["items"]["data"] if i["id"] == e["id"]), {})),
            "id": e["id"] or "si_preview",
            "price": e["price"],
            "quantity": e["quantity"],
        }
        for e in entries
    ]
    pending = [drafts.spec_of_invoice_item(store, ii) for ii in drafts.pending_items(store, customer["id"], sub["id"])]
    if changes and interval_of([e["price"] for e in entries]) != interval_of(sub):
        # As update_subscription does: a new interval resets the cycle to now, credits the unused time and
        # invoices a full new period at once, whatever the proration behavior.
        credits = (
            [] if behavior == "none" else proration_specs(store, sub, [(i, o, None) for i, o, _ in changes if o], at)
        )
        interval, count = interval_of([e["price"] for e in entries])
        new_period = (now, periods.boundary(now, interval, count, 1))
        specs = pending + credits + licensed_specs(store, hypothetical, *new_period)
        return drafts.build_invoice(
            store,
            customer,
            specs,
            billing_reason="subscription_update",
            subscription=sub,
            period=new_period,
            preview=True,
        )
    prorations = proration_specs(store, sub, changes, at) if changes and behavior != "none" else []
    if behavior == "always_invoice" and prorations:
        return drafts.build_invoice(
            store, customer, pending + prorations, billing_reason="subscription_update", subscription=sub, preview=True
        )
    start, end = period(sub)
    new_start, new_end, _ = next_period(store, sub)
    specs = pending + prorations
    specs += licensed_specs(store, hypothetical, new_start, new_end)
    if sub["status"] != "trialing":
        specs += metered_specs(store, sub, start, end)
    invoice = drafts.build_invoice(
        store, customer, specs, billing_reason="subscription_cycle", subscription=sub, period=(start, end), preview=True
    )
    invoice["created"] = end
    return invoice
