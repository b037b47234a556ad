"""Status changes, invoicing a subscription now, and cancellation.

Invoices call back :func:`on_invoice_paid` / :func:`on_invoice_failed` through
``collect.invoice_paid_hooks`` / ``invoice_failed_hooks`` (they do not import subscriptions); this
module registers them, and is imported by every module that invoices a subscription.
"""

from __future__ import annotations

import copy

from sandbox.billing import settings as billing_settings
from sandbox.billing.invoices import collect, drafts
from sandbox.billing.invoices import items as invoice_items
from sandbox.billing.subscriptions.specs import metered_specs, pending_specs, proration_specs
from sandbox.billing.subscriptions.state import period
from sandbox.core import errors
from sandbox.core.objects import clock_of
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.payments import cards

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
        if (
            drafts.invoice_subscription(invoice) == sub["id"]
            and invoice["status"] in ("draft", "open")
            and invoice["auto_advance"]
        ):
            invoice["auto_advance"] = False
            invoice["next_payment_attempt"] = None
    emit(store, "customer.subscription.deleted", sub, clock_id=clock_of(sub))
    return sub


def on_invoice_paid(store: Store, invoice: dict) -> None:
    if not drafts.invoice_subscription(invoice):
        return
    sub = store.get("subscription", drafts.invoice_subscription(invoice))
    if sub is None or sub["status"] not in ("incomplete", "past_due", "unpaid"):
        return
    # An older invoice paid: the subscription recovers only when no other invoice is still open.
    if (
        sub["latest_invoice"] != invoice["id"]
        and sub["status"] != "incomplete"
        and any(
            drafts.invoice_subscription(inv) == sub["id"] and inv["status"] == "open" and inv["id"] != invoice["id"]
            for inv in store.all("invoice")
        )
    ):
        return
    now = store.now(clock_of(sub))
    _set_status(store, sub, "trialing" if sub["trial_end"] and now < sub["trial_end"] else "active")


def on_invoice_failed(store: Store, invoice: dict, final: bool) -> None:
    if not drafts.invoice_subscription(invoice) or invoice["billing_reason"] == "subscription_create":
        return
    sub = store.get("subscription", drafts.invoice_subscription(invoice))
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


def prorations_to_items(store: Store, sub: dict, specs: list[dict]) -> list[dict]:
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


NO_PAYMENT_METHOD = "This customer has no attached payment source or default payment method."


def precheck_payment(store: Store, pm_id: str | None, missing: str = NO_PAYMENT_METHOD) -> None:
    """For ``error_if_incomplete``: raise the error the payment would fail with, before changing anything."""
    if pm_id is None:
        raise errors.StripeError(400, missing, code="resource_missing")
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


def cancel_subscription(store: Store, sub: dict, params: dict) -> dict:
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise errors.state_error(
            f"No such subscription: '{sub['id']}'; it has already been canceled.", code="resource_missing"
        )
    now = store.now(clock_of(sub))
    details = params.get("cancellation_details") or {}
    if params.get("prorate") and sub["status"] not in ("trialing", "incomplete"):
        changes = [(item["id"], (item["price"], item["quantity"]), None) for item in sub["items"]["data"]]
        prorations_to_items(store, sub, proration_specs(store, sub, changes, now))
    if params.get("invoice_now") and sub["status"] not in ("incomplete",):
        start, _ = period(sub)
        specs = pending_specs(store, sub)
        if sub["status"] != "trialing":
            specs += metered_specs(store, sub, start, now + 1)
        if specs:
            invoice_and_collect(store, sub, specs, "subscription_cycle", off_session=True, retries=False)
    return cancel_now(store, sub, "cancellation_requested", details.get("comment"), details.get("feedback"))
