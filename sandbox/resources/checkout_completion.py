"""Completing a Checkout session: what the hosted page and ``POST /_sandbox/checkout/{id}/complete`` share.

The customer (created with the typed email when the session named none) gets the card
as default payment method; subscription mode creates the subscription through
``sandbox.billing.subscriptions.create.create_subscription`` (``error_if_incomplete``: a declined first
payment leaves the session open, as Checkout reports the decline); setup mode confirms a setup
intent. Then ``checkout.session.completed`` is emitted, after the subscription's own events.
"""

from __future__ import annotations

import copy

from sandbox.core import errors
from sandbox.core.store import Store
from sandbox.events.emit import emit
from sandbox.payments import cards
from sandbox.payments import engine as payments
from sandbox.resources import customers
from sandbox.resources.payment_methods import attach, create_card_payment_method


class CheckoutResult:
    def __init__(self, status: str, error: str | None = None):
        self.status = status  # "complete", "open" (declined) or "requires_action"
        self.error = error


def submit_card(
    store: Store,
    session: dict,
    *,
    number: str,
    email: str | None = None,
    name: str | None = None,
    exp_month: int | None = None,
    exp_year: int | None = None,
    cvc: str | None = None,
) -> CheckoutResult:
    """The customer submitted the form with a card: decline, ask for 3-D Secure, or complete."""
    if session["status"] != "open":
        return CheckoutResult(session["status"], f"This Checkout Session is {session['status']}.")
    try:
        card = cards.lookup(number or "")
    except errors.StripeError as exc:
        return CheckoutResult("open", exc.message)
    if card.attach_fails and card.decline is not None:
        return CheckoutResult("open", card.decline.message)
    try:
        pm = create_card_payment_method(
            store,
            card.number,
            exp_month=exp_month,
            exp_year=exp_year,
            cvc_given=bool(cvc),
            billing_details={"email": email or session["customer_email"], "name": name},
        )
    except errors.StripeError as exc:  # an expiry in the past: the form says so, the session stays open
        return CheckoutResult("open", exc.message)
    meta = store.meta_for(session["id"])
    meta["pending"] = {"pm": pm["id"], "email": email, "name": name}
    needs_action = (
        cards.setup_outcome(store, pm).status == "requires_action"
        or cards.charge_outcome(store, pm).status == "requires_action"
    )
    if needs_action:
        return CheckoutResult("requires_action")
    return _complete(store, session)


def authenticate(store: Store, session: dict, approve: bool) -> CheckoutResult:
    """The customer finished the 3-D Secure step of the hosted page."""
    pending = store.meta_for(session["id"]).get("pending")
    if session["status"] != "open" or not pending:
        return CheckoutResult(session["status"], "Nothing to authenticate.")
    if not approve:
        store.meta_for(session["id"]).pop("pending", None)
        return CheckoutResult(
            "open",
            "We are unable to authenticate your payment method. "
            "Please choose a different payment method and try again.",
        )
    store.meta_for(pending["pm"])["preauthorized"] = True
    return _complete(store, session)


def _customer_for(store: Store, session: dict, pending: dict) -> dict:
    if session["customer"]:
        return store.get("customer", session["customer"])
    meta = store.meta_for(session["id"])
    if meta.get("created_customer"):
        return store.get("customer", meta["created_customer"])
    email = pending.get("email") or session["customer_email"]
    customer = customers.new_customer(store, email=email, name=pending.get("name"))
    store.insert(customer)
    emit(store, "customer.created", customer)
    meta["created_customer"] = customer["id"]
    return customer


def _complete(store: Store, session: dict) -> CheckoutResult:
    meta = store.meta_for(session["id"])
    pending = meta.get("pending") or {}
    pm = store.get("payment_method", pending["pm"])
    customer = _customer_for(store, session, pending)
    try:
        attach(store, pm, customer)
    except errors.StripeError as exc:
        return CheckoutResult("open", exc.message)
    before = copy.deepcopy(customer)
    customer["invoice_settings"]["default_payment_method"] = pm["id"]
    emit(store, "customer.updated", customer, {"invoice_settings": before["invoice_settings"]})
    if session["mode"] == "subscription":
        from sandbox.billing.subscriptions.create import create_subscription

        data = meta["subscription_data"]
        try:
            sub = create_subscription(
                store,
                customer_id=customer["id"],
                items=[{"price": item["price"]["id"], "quantity": item["quantity"]} for item in meta["line_items"]],
                default_payment_method=pm["id"],
                trial_end=data.get("trial_end"),
                trial_period_days=data.get("trial_period_days"),
                metadata=data.get("metadata") or {},
                description=data.get("description"),
                # After the 3-D Secure step the payment goes through (the approval pre-authorises the card), but
                # the billing engine's error_if_incomplete pre-check does not know that.
                payment_behavior="allow_incomplete"
                if store.meta_for(pm["id"]).get("preauthorized")
                else "error_if_incomplete",
            )
        except errors.StripeError as exc:
            store.meta_for(pm["id"]).pop("preauthorized", None)
            meta.pop("pending", None)
            return CheckoutResult("open", exc.message)
        session["subscription"] = sub["id"]
        session["invoice"] = sub.get("latest_invoice")
        invoice = store.get("invoice", sub["latest_invoice"]) if sub.get("latest_invoice") else None
        paid = invoice is not None and invoice.get("amount_paid", 0) > 0
        session["payment_status"] = "paid" if paid else "no_payment_required"
    else:
        data = meta["setup_intent_data"]
        si = payments.create_setup_intent(
            store,
            customer_id=customer["id"],
            payment_method_id=pm["id"],
            metadata=data.get("metadata") or {},
            description=data.get("description"),
        )
        payments.finish_setup_intent(store, si, pm)
        session["setup_intent"] = si["id"]
        session["payment_status"] = "no_payment_required"
    meta.pop("pending", None)
    session["customer"] = customer["id"]
    session["customer_details"] = {
        "address": {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None},
        "email": customer.get("email"),
        "name": pending.get("name") or customer.get("name"),
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
        "business_name": None,
        "individual_name": None,
    }
    session["status"] = "complete"
    session["url"] = None
    emit(store, "checkout.session.completed", session)
    return CheckoutResult("complete")
