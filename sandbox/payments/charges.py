"""Charges: what each payment attempt creates, with Radar's outcome; dispute and fraud-warning test cards act here."""

from __future__ import annotations

import copy

from sandbox.core import objects
from sandbox.core.routing import base_url
from sandbox.core.store import Store
from sandbox.events.emit import emit
from sandbox.payments import cards

# Radar: test cards with a raised risk level (Stripe's 4000 0000 0000 9235 and 4100 0000 0000 0019).
RISK = {
    "4000000000009235": ("elevated", 65),
    "4100000000000019": ("highest", 95),
}


def create_charge(store: Store, pi: dict, pm: dict, outcome: cards.Outcome) -> dict:
    """A charge of ``pm`` for ``pi`` (succeeded or failed), with Radar's ``outcome``; emits charge.succeeded/failed."""
    clock_id = store.meta_for(pi["id"]).get("clock_id")
    card = cards.card_of(store, pm)
    risk_level, risk_score = RISK.get(card.number, ("normal", 20))
    ok = outcome.ok
    decline = outcome.decline
    blocked = not ok and decline and decline.decline_code == "fraudulent" and risk_level == "highest"
    if ok:
        result = {
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    elif blocked:
        result = {
            "network_status": "not_sent_to_network",
            "reason": "highest_risk_level",
            "seller_message": "Stripe blocked this payment as too risky.",
            "type": "blocked",
        }
    else:
        result = {
            "network_status": "declined_by_network",
            "reason": decline.decline_code,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    charge_id = store.new_id("ch")
    details = copy.deepcopy(objects.template("charge")["payment_method_details"])
    details["card"].update(
        amount_authorized=pi["amount"] if ok else None,
        brand=pm["card"]["brand"],
        checks=copy.deepcopy(pm["card"]["checks"]),
        country=pm["card"]["country"],
        exp_month=pm["card"]["exp_month"],
        exp_year=pm["card"]["exp_year"],
        fingerprint=pm["card"]["fingerprint"],
        funding=pm["card"]["funding"],
        installments=None,
        last4=pm["card"]["last4"],
        network=pm["card"]["brand"],
        overcapture={"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
        wallet=None,
        authorization_code="123456" if ok else None,
        network_transaction_id=store.new_id("ntx", 15)[4:] if ok else None,
    )
    if card.three_d_secure:
        details["card"]["three_d_secure"] = {
            "authentication_flow": "challenge",
            "electronic_commerce_indicator": "05",
            "exemption_indicator": None,
            "result": "authenticated",
            "result_reason": None,
            "transaction_id": store.new_id("tx", 20)[3:],
            "version": "2.2.0",
        }
    else:
        details["card"]["three_d_secure"] = None
    charge = objects.build(
        "charge",
        id=charge_id,
        amount=pi["amount"],
        amount_captured=pi["amount"] if ok else 0,
        amount_refunded=0,
        balance_transaction=None,
        billing_details=copy.deepcopy(pm["billing_details"]),
        calculated_statement_descriptor="SANDBOX",
        captured=ok,
        created=store.now(clock_id),
        currency=pi["currency"],
        customer=pi["customer"],
        description=pi["description"],
        disputed=False,
        failure_balance_transaction=None,
        failure_code=None if ok else decline.code,
        failure_message=None if ok else decline.message,
        fraud_details={},
        livemode=False,
        metadata=copy.deepcopy(pi["metadata"]),
        outcome={
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            **result,
            "risk_level": risk_level,
            "risk_score": risk_score,
        },
        paid=ok,
        payment_intent=pi["id"],
        payment_method=pm["id"],
        payment_method_details=details,
        receipt_email=pi["receipt_email"],
        receipt_number=None,
        receipt_url=f"{base_url(store)}/_sandbox/receipts/{charge_id}",
        refunded=False,
        refunds={"data": [], "has_more": False, "object": "list", "url": f"/v1/charges/{charge_id}/refunds"},
        review=None,
        shipping=None,
        statement_descriptor=pi["statement_descriptor"],
        status="succeeded" if ok else "failed",
        transfer_data=None,
        source=None,
    )
    store.insert(charge)
    store.meta_for(charge_id)["clock_id"] = clock_id
    emit(store, "charge.succeeded" if ok else "charge.failed", charge, clock_id=clock_id)
    if ok and card.dispute_reason:
        from sandbox.resources.disputes import create_dispute

        create_dispute(store, charge, card.dispute_reason)
    if ok and card.early_fraud_warning:
        from sandbox.resources.early_fraud_warnings import create_warning

        create_warning(store, charge)
    return charge
