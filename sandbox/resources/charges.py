"""Charges: retrieve, update (metadata/description), list; created only by payments (:mod:`sandbox.payments.engine`)."""

from __future__ import annotations

import copy

from sandbox.core import errors, listing
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.events.emit import emit, previous_attributes


def get_charge(req: ApiRequest, charge_id: str, param: str = "charge") -> dict:
    return req.store.fetch("charge", charge_id, param)


@route("POST", "/v1/charges")
def create(req: ApiRequest) -> dict:
    raise errors.invalid_request(
        "The sandbox creates charges only through PaymentIntents (POST /v1/payment_intents with confirm=true).",
        "source",
    )


@route("GET", "/v1/charges/<charge_id>")
def retrieve(req: ApiRequest, charge_id: str) -> dict:
    req.validate({})
    return get_charge(req, charge_id, "id")


@route("POST", "/v1/charges/<charge_id>")
def update(req: ApiRequest, charge_id: str) -> dict:
    params = req.validate(
        {"metadata": P.METADATA, "description": str, "receipt_email": str, "fraud_details": P.ANY, "shipping": P.ANY}
    )
    charge = get_charge(req, charge_id, "id")
    before = copy.deepcopy(charge)
    if "metadata" in params:
        charge["metadata"] = P.apply_metadata(charge["metadata"], params["metadata"])
    for field in ("description", "receipt_email"):
        if field in params:
            charge[field] = params[field]
    if params.get("fraud_details"):
        charge["fraud_details"] = dict(params["fraud_details"])
    changes = previous_attributes(before, charge)
    if changes:
        emit(req.store, "charge.updated", charge, changes, clock_id=req.store.meta_for(charge_id).get("clock_id"))
    return charge


@route("GET", "/v1/charges")
def list_charges(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "customer": str, "payment_intent": str, "transfer_group": str})
    created = listing.created_filter(params.get("created"))

    def matches(charge: dict) -> bool:
        return (
            (not params.get("customer") or charge["customer"] == params["customer"])
            and (not params.get("payment_intent") or charge["payment_intent"] == params["payment_intent"])
            and created(charge)
        )

    return listing.paginate(params, filter(matches, req.store.all("charge")), "/v1/charges")
