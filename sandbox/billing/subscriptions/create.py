"""Creating a subscription and its first invoice; also what the hosted checkout page calls."""

from __future__ import annotations

from sandbox.billing import periods
from sandbox.billing.invoices import drafts
from sandbox.billing.subscriptions.lifecycle import NO_PAYMENT_METHOD, invoice_and_collect, precheck_payment
from sandbox.billing.subscriptions.specs import licensed_specs, metered_specs
from sandbox.billing.subscriptions.state import (
    PAYMENT_BEHAVIORS,
    PRORATION_BEHAVIORS,
    build_item,
    check_prices,
    interval_of,
    resolve_items,
)
from sandbox.core import errors, objects
from sandbox.core.store import Store
from sandbox.events.emit import emit
from sandbox.resources import customers as customers_mod
from sandbox.resources import payment_methods

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
    entries = resolve_items(store, items)
    check_prices(store, entries)
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
    specs += drafts.pending_specs(store, customer["id"], None)

    total = sum(s["amount"] for s in specs) + customer["balance"]
    if payment_behavior == "error_if_incomplete" and total > 0:
        precheck_payment(
            store,
            pm_id or customer["invoice_settings"]["default_payment_method"],
            f"{NO_PAYMENT_METHOD} Please consider adding a default payment method.",
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
