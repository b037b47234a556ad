"""Updating a subscription: item changes, prorations, trial end, a new interval resetting the cycle."""

from __future__ import annotations

import copy

from sandbox.billing import periods
from sandbox.billing.pricing import is_metered, plan_of
from sandbox.billing.subscriptions.lifecycle import (
    invoice_and_collect,
    invoice_now,
    precheck_payment,
    prorations_to_items,
)
from sandbox.billing.subscriptions.specs import licensed_specs, pending_specs, proration_specs
from sandbox.billing.subscriptions.state import (
    build_item,
    check_prices,
    interval_of,
    period,
    resolve_items,
    set_period,
)
from sandbox.core import errors
from sandbox.core import params as P
from sandbox.core.objects import clock_of
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.resources import payment_methods

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
                price = store.fetch("price", raw["price"], f"{name}[price]")
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
            (resolved,) = resolve_items(store, [raw], prefix)
            resolved["id"] = None
            entries.append(resolved)
            changes.append((None, None, (resolved["price"], resolved["quantity"])))
    if not entries:
        raise errors.invalid_request("A subscription must have at least one item.", prefix)
    check_prices(store, entries, sub["currency"])
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
    # A trial's anchor is its end, and Stripe refuses an anchor before the trial's end
    # (subscription_update_trial_after_billing_cycle_anchor): a new interval while trialing resets nothing and
    # charges nothing; the new price's first full period starts when the trial ends.
    trial_goes_on = sub["status"] == "trialing" and trial_end != now
    reset_cycle = interval_changed and not trial_goes_on
    specs = []
    if changes and not interval_changed and behavior != "none":
        specs = proration_specs(store, sub, changes, at)
    charge_now = (behavior == "always_invoice" and specs) or reset_cycle or trial_end == now
    if params.get("payment_behavior") == "error_if_incomplete" and charge_now:
        precheck_payment(store, pm_id or customer["invoice_settings"]["default_payment_method"])

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

    if reset_cycle:
        # A new interval resets the billing cycle to now: credit the unused time, charge a full new period.
        credits = (
            [] if behavior == "none" else proration_specs(store, sub, [(i, o, None) for i, o, _ in changes if o], at)
        )
        prorations_to_items(store, sub, credits)
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
        created_items = prorations_to_items(store, sub, specs) if specs else []
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
