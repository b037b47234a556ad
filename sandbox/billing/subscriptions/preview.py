"""``POST /v1/invoices/create_preview``: the next invoice of a customer or subscription, or of a
hypothetical new subscription or update, with the same arithmetic as the real one."""

from __future__ import annotations

import copy

from sandbox.billing import periods
from sandbox.billing.invoices import drafts
from sandbox.billing.subscriptions.api import UPDATE_ITEM_PARAMS
from sandbox.billing.subscriptions.specs import licensed_specs, metered_specs, proration_specs
from sandbox.billing.subscriptions.state import (
    PRORATION_BEHAVIORS,
    check_prices,
    get_subscription,
    interval_of,
    next_period,
    period,
    resolve_items,
)
from sandbox.billing.subscriptions.update import plan_item_changes
from sandbox.core import errors
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.resources import customers as customers_mod

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
            specs = drafts.pending_specs(store, customer["id"], None)
            if not specs:
                raise errors.invalid_request("Nothing to invoice for customer", code="invoice_upcoming_none")
            return drafts.build_invoice(store, customer, specs, billing_reason="manual", preview=True)
        entries = resolve_items(store, details["items"], "subscription_details[items]")
        check_prices(store, entries)
        interval, count = interval_of([e["price"] for e in entries])
        draft = {"id": None, "customer": customer["id"], "metadata": {}, "items": {"data": []}}
        end = periods.boundary(now, interval, count, 1)
        draft["items"]["data"] = [{"id": None, "price": e["price"], "quantity": e["quantity"]} for e in entries]
        specs = drafts.pending_specs(store, customer["id"], None)
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
    pending = drafts.pending_specs(store, customer["id"], sub["id"])
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
