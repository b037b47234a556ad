"""An invoice's life after its draft: finalize, pay (attempts, retries, 3-D Secure later), void, uncollectible.

Paying goes through :func:`sandbox.payments.engine.pay`. Hidden state: ``meta[invoice]["payment_intent"]``.
Subscriptions react through :data:`invoice_paid_hooks` and :data:`invoice_failed_hooks`, which they
register: invoices know nothing of subscriptions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from sandbox.billing import periods
from sandbox.billing import settings as billing_settings
from sandbox.billing.invoices.drafts import invoice_subscription, recompute
from sandbox.core import errors, objects
from sandbox.core.objects import clock_of
from sandbox.core.routing import base_url
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.payments import engine as payments
from sandbox.payments import minimums

# Called as ``hook(store, invoice)`` once an invoice is paid (subscriptions register theirs).
invoice_paid_hooks: list[Callable[[Store, dict], None]] = []
# Called as ``hook(store, invoice, final)`` after a failed attempt; ``final``: no retry is left.
invoice_failed_hooks: list[Callable[[Store, dict, bool], None]] = []


# state changes


def finalize(store: Store, invoice: dict) -> dict:
    """draft → open: number, balance applied, hosted URL; a zero amount due is paid at once."""
    if invoice["status"] != "draft":
        raise errors.state_error("This invoice is already finalized, you can't re-finalize a non-draft invoice.")
    customer = store.get("customer", invoice["customer"])
    clock = clock_of(invoice)
    now = store.now(clock)
    recompute(invoice)
    starting = customer["balance"] if customer else 0
    net = invoice["total"] + starting
    invoice["starting_balance"] = starting
    if net > 0 and minimums.is_too_small(net, invoice["currency"]):
        # Under the minimum charge: nothing is due now; the amount stays owed on the customer's balance (a debit)
        # and the next invoice collects it, as Stripe does.
        invoice["ending_balance"], invoice["amount_due"] = net, 0
    else:
        invoice["ending_balance"], invoice["amount_due"] = min(0, net), max(0, net)
    invoice["amount_remaining"] = invoice["amount_due"]
    if customer is not None:
        if customer["balance"] != invoice["ending_balance"]:
            before = copy.deepcopy(customer)
            customer["balance"] = invoice["ending_balance"]
            emit(store, "customer.updated", customer, previous_attributes(before, customer), clock_id=clock)
        invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    invoice["effective_at"] = now
    invoice["automatically_finalizes_at"] = None
    invoice["hosted_invoice_url"] = f"{base_url(store)}/_sandbox/pay/invoice/{invoice['id']}"
    invoice["invoice_pdf"] = invoice["hosted_invoice_url"] + "/pdf"
    emit(store, "invoice.finalized", invoice, clock_id=clock)
    if invoice["amount_due"] == 0:
        mark_paid(store, invoice)
    return invoice


def mark_paid(store: Store, invoice: dict, *, out_of_band: bool = False) -> dict:
    clock = clock_of(invoice)
    invoice["status"] = "paid"
    invoice["amount_paid"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    invoice["status_transitions"]["paid_at"] = store.now(clock)
    emit(store, "invoice.paid", invoice, clock_id=clock)
    if not out_of_band:
        emit(store, "invoice.payment_succeeded", invoice, clock_id=clock)
    for hook in list(invoice_paid_hooks):
        hook(store, invoice)
    return invoice


def void(store: Store, invoice: dict) -> dict:
    if invoice["status"] not in ("open", "uncollectible"):
        raise errors.state_error(f"You can only void open or uncollectible invoices, not {invoice['status']} ones.")
    before = copy.deepcopy(invoice)
    invoice["status"] = "void"
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    invoice["status_transitions"]["voided_at"] = store.now(clock_of(invoice))
    emit(store, "invoice.voided", invoice, previous_attributes(before, invoice), clock_id=clock_of(invoice))
    return invoice


def mark_uncollectible(store: Store, invoice: dict) -> dict:
    if invoice["status"] != "open":
        raise errors.state_error(f"You can only mark open invoices uncollectible, not {invoice['status']} ones.")
    before = copy.deepcopy(invoice)
    invoice["status"] = "uncollectible"
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    invoice["status_transitions"]["marked_uncollectible_at"] = store.now(clock_of(invoice))
    emit(
        store, "invoice.marked_uncollectible", invoice, previous_attributes(before, invoice), clock_id=clock_of(invoice)
    )
    return invoice


def payment_method_for(store: Store, invoice: dict) -> str | None:
    """The invoice's, else its subscription's, else the customer's invoice default payment method."""
    if invoice["default_payment_method"]:
        return invoice["default_payment_method"]
    if invoice_subscription(invoice):
        sub = store.get("subscription", invoice_subscription(invoice))
        if sub and sub["default_payment_method"]:
            return sub["default_payment_method"]
    customer = store.get("customer", invoice["customer"])
    return customer["invoice_settings"]["default_payment_method"] if customer else None


def _charge(store: Store, invoice: dict, pm_id: str, off_session: bool) -> dict:
    kwargs = {
        "customer_id": invoice["customer"],
        "payment_method_id": pm_id,
        "amount": invoice["amount_remaining"],
        "currency": invoice["currency"],
        "description": {
            "subscription_create": "Subscription creation",
            "subscription_update": "Subscription update",
        }.get(invoice["billing_reason"], "Invoice " + (invoice["number"] or "")),
        "metadata": {},
        "invoice_id": invoice["id"],
        "off_session": off_session,
        "clock_id": clock_of(invoice),
    }
    return payments.pay(store, **kwargs)


def _record_payment(store: Store, invoice: dict, intent: dict) -> None:
    store.meta_for(invoice["id"])["payment_intent"] = intent["id"]
    payment = objects.build(
        "invoice_payment",
        id=store.new_id("inpay"),
        amount_paid=invoice["amount_remaining"] if intent["status"] == "succeeded" else None,
        amount_requested=invoice["amount_remaining"],
        created=store.now(clock_of(invoice)),
        currency=invoice["currency"],
        invoice=invoice["id"],
        is_default=True,
        livemode=False,
        payment={"type": "payment_intent", "payment_intent": intent["id"]},
        status="paid" if intent["status"] == "succeeded" else "open",
        status_transitions={
            "canceled_at": None,
            "paid_at": store.now(clock_of(invoice)) if intent["status"] == "succeeded" else None,
        },
    )
    for other in store.all("invoice_payment"):
        if other["invoice"] == invoice["id"] and other["is_default"]:
            other["is_default"] = False
            if other["status"] == "open":
                other["status"] = "canceled"
                other["status_transitions"]["canceled_at"] = payment["created"]
    store.insert(payment)


def attempt(
    store: Store,
    invoice: dict,
    *,
    payment_method: str | None = None,
    off_session: bool = True,
    retries: bool = True,
) -> dict | None:
    """Charge an open invoice; returns the failure (``{"code", "decline_code", "message"}``) or None.

    A failure emits ``invoice.payment_failed``; with ``retries`` the next attempt is scheduled per
    :func:`settings` and, once they are used up, the subscription ends (:func:`on_invoice_failed`).
    """
    clock = clock_of(invoice)
    before = copy.deepcopy(invoice)
    pm_id = payment_method or payment_method_for(store, invoice)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    failure = None
    if pm_id is None:
        failure = {
            "code": "invoice_no_customer_payment_method",
            "decline_code": None,
            "message": "This customer has no attached payment source or default payment method.",
        }
    else:
        intent = _charge(store, invoice, pm_id, off_session)
        _record_payment(store, invoice, intent)
        if intent["status"] == "succeeded":
            mark_paid(store, invoice)
            return None
        if intent["status"] == "requires_action":
            invoice["next_payment_attempt"] = None
            emit(store, "invoice.payment_action_required", invoice, clock_id=clock)
            return {
                "code": "authentication_required",
                "decline_code": "authentication_required",
                "message": "This payment requires authentication (3-D Secure).",
                "requires_action": True,
                "payment_intent": intent,
            }
        error = intent.get("last_payment_error") or {}
        failure = {
            "code": error.get("code") or "card_declined",
            "decline_code": error.get("decline_code"),
            "message": error.get("message") or "Your card was declined.",
            "payment_intent": intent,
        }
    final = False
    if retries and invoice["billing_reason"] != "subscription_create" and invoice["auto_advance"]:
        schedule = billing_settings.settings(store)["retry_days"]
        n = invoice["attempt_count"]
        if n <= len(schedule):
            invoice["next_payment_attempt"] = store.now(clock) + int(schedule[n - 1] * periods.DAY)
        else:
            invoice["next_payment_attempt"] = None
            final = True
    else:
        invoice["next_payment_attempt"] = None
    emit(store, "invoice.payment_failed", invoice, previous_attributes(before, invoice), clock_id=clock)
    for hook in list(invoice_failed_hooks):
        hook(store, invoice, final)
    return failure


def failure_error(failure: dict) -> errors.StripeError:
    extra = {}
    if failure.get("payment_intent"):
        extra["payment_intent"] = failure["payment_intent"]
    if failure["code"] == "invoice_no_customer_payment_method":
        return errors.StripeError(400, failure["message"], code=failure["code"])
    return errors.card_error(failure["message"], failure["code"], failure.get("decline_code"), **extra)


def _on_payment_intent_succeeded(store: Store, intent: dict) -> None:
    """A payment intent that needed 3-D Secure succeeded later: its invoice is paid."""
    for invoice in store.all("invoice"):
        if store.meta.get(invoice["id"], {}).get("payment_intent") == intent["id"] and invoice["status"] == "open":
            for payment in store.all("invoice_payment"):
                if payment["invoice"] == invoice["id"] and payment["payment"].get("payment_intent") == intent["id"]:
                    payment["status"] = "paid"
                    payment["amount_paid"] = invoice["amount_remaining"]
                    payment["status_transitions"]["paid_at"] = store.now(clock_of(invoice))
            mark_paid(store, invoice)


def finalize_and_collect(store: Store, invoice: dict, *, off_session: bool, retries: bool = True) -> dict | None:
    """Finalize a draft and, if that leaves it open, attempt its payment; returns the failure or None."""
    finalize(store, invoice)
    if invoice["status"] != "open":
        return None
    return attempt(store, invoice, off_session=off_session, retries=retries)


payments.payment_succeeded_hooks.append(_on_payment_intent_succeeded)
