"""Charging cards: payment intents, setup intents and the charges they create.

Everything that moves money goes through here, for the API (``/v1/payment_intents``), for
Checkout and for the billing engine:

- :func:`pay` is the one call the billing engine makes to collect an invoice: it creates and
  confirms a payment intent and returns it (``succeeded``; ``requires_payment_method`` with
  ``last_payment_error`` after a decline; ``requires_action`` when the card needs 3-D Secure,
  with ``next_action.redirect_to_url.url`` pointing at the hosted page ``/_sandbox/3ds/{id}``).
- :func:`confirm_payment_intent` / :func:`confirm_setup_intent` run a confirmation.
- :func:`authenticate` is what the hosted 3-D Secure page calls: approval finishes the intent
  (and calls :data:`payment_succeeded_hooks`), failure leaves it ``requires_payment_method`` with
  ``payment_intent_authentication_failure`` (and calls :data:`payment_failed_hooks`).

An intent made for an invoice remembers it in hidden meta: ``store.meta_for(pi_id)["invoice_id"]``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from sandbox.core import errors, objects
from sandbox.core.routing import base_url
from sandbox.core.store import Store
from sandbox.events.emit import emit
from sandbox.payments import cards
from sandbox.payments.charges import create_charge

# ``fn(store, payment_intent)``: called when an intent succeeds *later* than the call that confirmed it
# (after the customer approved 3-D Secure on the hosted page). The billing engine marks the invoice paid.
payment_succeeded_hooks: list[Callable[[Store, dict], None]] = []
# ``fn(store, payment_intent)``: called when a pending 3-D Secure authentication fails.
payment_failed_hooks: list[Callable[[Store, dict], None]] = []


AUTHENTICATION_FAILURE = cards.Decline(
    "payment_intent_authentication_failure",
    None,
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new "
    "PaymentMethod to attempt to fulfill this PaymentIntent again.",
)
SETUP_AUTHENTICATION_FAILURE = cards.Decline(
    "setup_intent_authentication_failure",
    None,
    "The latest attempt to set up the payment method has failed because authentication failed.",
)


def _clock_of(store: Store, customer_id: str | None) -> str | None:
    customer = store.get("customer", customer_id) if customer_id else None
    return customer.get("test_clock") if customer else None


# payment intents


def create_payment_intent(
    store: Store,
    *,
    amount: int,
    currency: str,
    customer_id: str | None = None,
    payment_method_id: str | None = None,
    description: str | None = None,
    metadata: dict | None = None,
    setup_future_usage: str | None = None,
    receipt_email: str | None = None,
    statement_descriptor: str | None = None,
    invoice_id: str | None = None,
    clock_id: str | None = None,
    return_url: str | None = None,
) -> dict:
    """Store a new payment intent (``requires_payment_method`` or ``requires_confirmation``) and emit ``created``."""
    clock_id = clock_id or _clock_of(store, customer_id)
    pi_id = store.new_id("pi")
    pi = objects.build(
        "payment_intent",
        id=pi_id,
        amount=amount,
        amount_capturable=0,
        amount_details={"tip": {}},
        amount_received=0,
        automatic_payment_methods=None,
        canceled_at=None,
        cancellation_reason=None,
        capture_method="automatic",
        client_secret=f"{pi_id}_secret_{store.new_id('s')[2:]}",
        confirmation_method="automatic",
        created=store.now(clock_id),
        currency=currency.lower(),
        customer=customer_id,
        description=description,
        last_payment_error=None,
        latest_charge=None,
        livemode=False,
        metadata=metadata or {},
        next_action=None,
        payment_method=payment_method_id,
        payment_method_configuration_details=None,
        payment_method_options={
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        payment_method_types=["card"],
        processing=None,
        receipt_email=receipt_email,
        setup_future_usage=setup_future_usage,
        shipping=None,
        statement_descriptor=statement_descriptor,
        status="requires_confirmation" if payment_method_id else "requires_payment_method",
        transfer_data=None,
        excluded_payment_method_types=None,
        managed_payments=None,
    )
    store.insert(pi)
    meta = store.meta_for(pi_id)
    meta["clock_id"] = clock_id
    if invoice_id:
        meta["invoice_id"] = invoice_id
    if return_url:
        meta["return_url"] = return_url
    emit(store, "payment_intent.created", pi, clock_id=clock_id)
    return pi


def confirm_payment_intent(
    store: Store, pi: dict, *, off_session: bool = False, authenticated: bool = False, return_url: str | None = None
) -> dict:
    """Try to pay ``pi`` with its payment method; updates and returns it (see the module docstring)."""
    meta = store.meta_for(pi["id"])
    clock_id = meta.get("clock_id")
    if return_url:
        meta["return_url"] = return_url
    if pi["payment_method"] is None:
        raise errors.invalid_request(
            "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
            "PaymentIntent with a payment method, specify `payment_method`.",
            "payment_method",
            "payment_intent_unexpected_state",
        )
    pm = store.get("payment_method", pi["payment_method"])
    # A 3-D Secure approval the customer just gave (in Checkout) covers the next payment with that card.
    authenticated = authenticated or bool(store.meta_for(pm["id"]).pop("preauthorized", False))
    outcome = cards.charge_outcome(store, pm, off_session=off_session, authenticated=authenticated)
    if outcome.status == "declined" and outcome.decline.code == "authentication_required" and meta.get("invoice_id"):
        # Stripe Billing asks the customer to authenticate an invoice payment (invoice.payment_action_required).
        outcome = cards.Outcome("requires_action")
    if outcome.status == "requires_action":
        pi["status"] = "requires_action"
        pi["last_payment_error"] = None
        pi["next_action"] = _redirect_action(store, pi["id"], meta.get("return_url"))
        emit(store, "payment_intent.requires_action", pi, clock_id=clock_id)
        return pi
    charge = create_charge(store, pi, pm, outcome)
    pi["latest_charge"] = charge["id"]
    pi["next_action"] = None
    if outcome.ok:
        _succeed(store, pi, pm)
    else:
        _fail(store, pi, pm, outcome.decline, charge_id=charge["id"])
    return pi


def _succeed(store: Store, pi: dict, pm: dict) -> None:
    pi["status"] = "succeeded"
    pi["amount_received"] = pi["amount"]
    pi["last_payment_error"] = None
    if pi["setup_future_usage"] and pi["customer"] and pm["customer"] is None:
        pm["customer"] = pi["customer"]
        emit(store, "payment_method.attached", pm, clock_id=_clock_of(store, pi["customer"]))
    emit(store, "payment_intent.succeeded", pi, clock_id=store.meta_for(pi["id"]).get("clock_id"))


def _fail(store: Store, pi: dict, pm: dict, decline: cards.Decline, *, charge_id: str | None = None) -> None:
    error = {
        "type": "card_error" if charge_id else "invalid_request_error",
        "code": decline.code,
        "doc_url": errors.DOCS + decline.code,
        "message": decline.message,
        "payment_method": copy.deepcopy(pm),
    }
    if decline.decline_code:
        error["decline_code"] = decline.decline_code
    if charge_id:
        error["charge"] = charge_id
    pi["status"] = "requires_payment_method"
    pi["last_payment_error"] = error
    pi["payment_method"] = None
    pi["next_action"] = None
    emit(store, "payment_intent.payment_failed", pi, clock_id=store.meta_for(pi["id"]).get("clock_id"))


def _redirect_action(store: Store, intent_id: str, return_url: str | None) -> dict:
    return {
        "type": "redirect_to_url",
        "redirect_to_url": {"return_url": return_url, "url": f"{base_url(store)}/_sandbox/3ds/{intent_id}"},
    }


def decline_error_for(pi_or_si: dict) -> errors.StripeError:
    """The 402 a failed confirmation answers with (Stripe embeds the intent in the error)."""
    error = pi_or_si.get("last_payment_error") or pi_or_si.get("last_setup_error") or {}
    key = "payment_intent" if pi_or_si["object"] == "payment_intent" else "setup_intent"
    extra = {key: copy.deepcopy(pi_or_si)}
    for name in ("charge", "payment_method"):
        if name in error:
            extra[name] = error[name]
    code = error.get("code", "card_declined")
    return errors.card_error(error.get("message", ""), code, error.get("decline_code"), **extra)


def pay(
    store: Store,
    *,
    customer_id: str,
    payment_method_id: str,
    amount: int,
    currency: str,
    description: str | None = None,
    metadata: dict | None = None,
    invoice_id: str | None = None,
    off_session: bool = True,
    clock_id: str | None = None,
) -> dict:
    """Create and confirm a payment intent for ``amount`` (the billing engine's way to collect an invoice).

    Returns the payment intent: ``succeeded`` (``latest_charge`` set), ``requires_payment_method`` with
    ``last_payment_error`` (``latest_charge`` is the failed charge), or ``requires_action`` (3-D Secure:
    ``next_action.redirect_to_url.url`` is the hosted page; when the customer approves,
    :data:`payment_succeeded_hooks` run). Never raises for a decline.
    """
    with store.lock:
        pi = create_payment_intent(
            store,
            amount=amount,
            currency=currency,
            customer_id=customer_id,
            payment_method_id=payment_method_id,
            description=description,
            metadata=metadata,
            invoice_id=invoice_id,
            clock_id=clock_id,
        )
        return confirm_payment_intent(store, pi, off_session=off_session)


def authenticate(store: Store, intent_id: str, approve: bool) -> dict:
    """Finish a pending 3-D Secure authentication of a payment or setup intent (the hosted page's buttons)."""
    with store.lock:
        kind = "setup_intent" if intent_id.startswith("seti_") else "payment_intent"
        intent = store.get(kind, intent_id)
        if intent is None:
            raise errors.resource_missing(kind, intent_id)
        if intent["status"] != "requires_action":
            raise errors.state_error(f"This {kind} is not awaiting authentication (status {intent['status']}).")
        pm = store.get("payment_method", intent["payment_method"])
        if kind == "setup_intent":
            if approve:
                finish_setup_intent(store, intent, pm)
            else:
                _fail_setup(store, intent, pm, SETUP_AUTHENTICATION_FAILURE)
            return intent
        if approve:
            confirm_payment_intent(store, intent, authenticated=True)
            hooks = payment_succeeded_hooks if intent["status"] == "succeeded" else payment_failed_hooks
        else:
            _fail(store, intent, pm, AUTHENTICATION_FAILURE)
            hooks = payment_failed_hooks
        for hook in list(hooks):
            hook(store, intent)
        return intent


def cancel_payment_intent(store: Store, pi: dict, reason: str | None = None) -> dict:
    if pi["status"] in ("succeeded", "canceled"):
        raise errors.state_error(
            f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}. Only a PaymentIntent "
            "with one of the following statuses may be canceled: requires_payment_method, requires_capture, "
            "requires_confirmation, requires_action, processing.",
            code="payment_intent_unexpected_state",
        )
    clock_id = store.meta_for(pi["id"]).get("clock_id")
    pi["status"] = "canceled"
    pi["canceled_at"] = store.now(clock_id)
    pi["cancellation_reason"] = reason
    pi["next_action"] = None
    emit(store, "payment_intent.canceled", pi, clock_id=clock_id)
    return pi


# charges


# setup intents


def create_setup_intent(
    store: Store,
    *,
    customer_id: str | None = None,
    payment_method_id: str | None = None,
    description: str | None = None,
    metadata: dict | None = None,
    usage: str = "off_session",
    return_url: str | None = None,
) -> dict:
    clock_id = _clock_of(store, customer_id)
    si_id = store.new_id("seti")
    si = objects.build(
        "setup_intent",
        id=si_id,
        automatic_payment_methods=None,
        cancellation_reason=None,
        client_secret=f"{si_id}_secret_{store.new_id('s')[2:]}",
        created=store.now(clock_id),
        customer=customer_id,
        description=description,
        last_setup_error=None,
        latest_attempt=None,
        livemode=False,
        metadata=metadata or {},
        next_action=None,
        payment_method=payment_method_id,
        payment_method_configuration_details=None,
        payment_method_options={
            "card": {"mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
        },
        status="requires_confirmation" if payment_method_id else "requires_payment_method",
        usage=usage,
    )
    store.insert(si)
    meta = store.meta_for(si_id)
    meta["clock_id"] = clock_id
    if return_url:
        meta["return_url"] = return_url
    emit(store, "setup_intent.created", si, clock_id=clock_id)
    return si


def confirm_setup_intent(store: Store, si: dict, *, return_url: str | None = None) -> dict:
    meta = store.meta_for(si["id"])
    if return_url:
        meta["return_url"] = return_url
    if si["payment_method"] is None:
        raise errors.invalid_request(
            "You cannot confirm this SetupIntent because it's missing a payment method.",
            "payment_method",
            "setup_intent_unexpected_state",
        )
    pm = store.get("payment_method", si["payment_method"])
    outcome = cards.setup_outcome(store, pm)
    if outcome.status == "requires_action":
        si["status"] = "requires_action"
        si["next_action"] = _redirect_action(store, si["id"], meta.get("return_url"))
        emit(store, "setup_intent.requires_action", si, clock_id=meta.get("clock_id"))
    elif outcome.ok:
        finish_setup_intent(store, si, pm)
    else:
        _fail_setup(store, si, pm, outcome.decline)
    return si


def finish_setup_intent(store: Store, si: dict, pm: dict) -> None:
    clock_id = store.meta_for(si["id"]).get("clock_id")
    si["status"] = "succeeded"
    si["next_action"] = None
    si["last_setup_error"] = None
    if si["customer"] and pm["customer"] is None:
        pm["customer"] = si["customer"]
        emit(store, "payment_method.attached", pm, clock_id=clock_id)
    emit(store, "setup_intent.succeeded", si, clock_id=clock_id)


def _fail_setup(store: Store, si: dict, pm: dict, decline: cards.Decline) -> None:
    error = {
        "type": "card_error" if decline.decline_code else "invalid_request_error",
        "code": decline.code,
        "doc_url": errors.DOCS + decline.code,
        "message": decline.message,
        "payment_method": copy.deepcopy(pm),
    }
    if decline.decline_code:
        error["decline_code"] = decline.decline_code
    si["status"] = "requires_payment_method"
    si["last_setup_error"] = error
    si["payment_method"] = None
    si["next_action"] = None
    emit(store, "setup_intent.setup_failed", si, clock_id=store.meta_for(si["id"]).get("clock_id"))
