"""Refunds of a charge (by ``charge`` or ``payment_intent``), full or partial: create, retrieve, update, list.

A refund succeeds at once, adds to the charge's ``amount_refunded`` (``refunded`` once fully refunded)
and emits ``refund.created`` then ``charge.refunded``.
"""

from __future__ import annotations

import copy

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.events.emit import emit

REASON = P.OneOf("duplicate", "fraudulent", "requested_by_customer")


@route("POST", "/v1/refunds")
def create(req: ApiRequest) -> dict:
    params = req.validate(
        {
            "charge": str,
            "payment_intent": str,
            "amount": int,
            "reason": REASON,
            "metadata": P.METADATA,
            "instructions_email": str,
            "refund_application_fee": bool,
            "reverse_transfer": bool,
            "origin": str,
            "currency": str,
            "customer": str,
        }
    )
    store = req.store
    if params.get("charge"):
        charge = store.fetch("charge", params["charge"], "charge")
    elif params.get("payment_intent"):
        pi = store.fetch("payment_intent", params["payment_intent"], "payment_intent")
        charge = store.get("charge", pi["latest_charge"]) if pi["latest_charge"] else None
        if charge is None or pi["status"] != "succeeded":
            raise errors.invalid_request(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                "payment_intent",
                "charge_not_refundable",
            )
    else:
        raise errors.invalid_request(
            "One of the following params should be provided for this request: payment_intent or charge."
        )
    return refund_charge(store, charge, params.get("amount"), params.get("reason"), params.get("metadata"))


def refund_charge(store, charge: dict, amount: int | None, reason: str | None = None, metadata=None) -> dict:
    if charge["status"] != "succeeded":
        raise errors.invalid_request(f"Charge {charge['id']} has not succeeded.", "charge", "charge_not_refundable")
    remaining = charge["amount"] - charge["amount_refunded"]
    if charge["refunded"] or remaining <= 0:
        raise errors.invalid_request(
            f"Charge {charge['id']} has already been refunded.", "charge", "charge_already_refunded"
        )
    if charge["disputed"]:
        dispute = next((d for d in store.all("dispute") if d["charge"] == charge["id"]), None)
        if dispute is not None and dispute["status"] not in (
            "warning_needs_response",
            "warning_under_review",
            "warning_closed",
            "won",
        ):
            raise errors.invalid_request(
                f"Charge {charge['id']} has been charged back; refunds are not possible.", "charge", "charge_disputed"
            )
    amount = remaining if amount is None else amount
    if amount < 1 or amount > remaining:
        raise errors.invalid_request(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})."
            if amount > remaining
            else "Refund amount must be positive.",
            "amount",
            "amount_too_large" if amount > remaining else "amount_too_small",
        )
    clock_id = store.meta_for(charge["id"]).get("clock_id")
    refund = objects.build(
        "refund",
        id=store.new_id("re"),
        amount=amount,
        balance_transaction=None,
        charge=charge["id"],
        created=store.now(clock_id),
        currency=charge["currency"],
        destination_details={
            "card": {
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "reference": None,
                "type": "refund",
            },
            "type": "card",
        },
        metadata=P.apply_metadata({}, metadata),
        payment_intent=charge["payment_intent"],
        reason=reason,
        receipt_number=None,
        source_transfer_reversal=None,
        status="succeeded",
        transfer_reversal=None,
        customer=charge["customer"],
        customer_account=None,
        payment_method=charge["payment_method"],
    )
    store.insert(refund)
    store.meta_for(refund["id"])["clock_id"] = clock_id
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
    emit(store, "refund.created", refund, clock_id=clock_id)
    emit(store, "charge.refunded", charge, previous, clock_id=clock_id)
    return refund


def _get(req: ApiRequest, refund_id: str) -> dict:
    return req.store.fetch("refund", refund_id, "refund")


@route("GET", "/v1/refunds/<refund_id>")
def retrieve(req: ApiRequest, refund_id: str) -> dict:
    req.validate({})
    return _get(req, refund_id)


@route("POST", "/v1/refunds/<refund_id>")
def update(req: ApiRequest, refund_id: str) -> dict:
    params = req.validate({"metadata": P.METADATA})
    refund = _get(req, refund_id)
    if "metadata" in params:
        before = dict(refund["metadata"])
        refund["metadata"] = P.apply_metadata(refund["metadata"], params["metadata"])
        emit(req.store, "refund.updated", refund, {"metadata": before})
    return refund


@route("GET", "/v1/refunds")
def list_refunds(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "charge": str, "payment_intent": str})
    created = listing.created_filter(params.get("created"))

    def matches(refund: dict) -> bool:
        return (
            (not params.get("charge") or refund["charge"] == params["charge"])
            and (not params.get("payment_intent") or refund["payment_intent"] == params["payment_intent"])
            and created(refund)
        )

    return listing.paginate(params, filter(matches, req.store.all("refund")), "/v1/refunds")


@route("GET", "/v1/charges/<charge_id>/refunds")
def list_charge_refunds(req: ApiRequest, charge_id: str) -> dict:
    params = req.validate(listing.LIST_PARAMS)
    req.store.fetch("charge", charge_id, "charge")
    items = (r for r in req.store.all("refund") if r["charge"] == charge_id)
    return listing.paginate(params, items, f"/v1/charges/{charge_id}/refunds")
