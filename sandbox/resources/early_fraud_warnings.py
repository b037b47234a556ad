"""Radar early fraud warnings: list and retrieve; created by ``POST /_sandbox/charges/{id}/early_fraud_warning``
(``fraud_type``, default ``made_with_stolen_card``) → ``radar.early_fraud_warning.created``. A successful
charge of Stripe's test card 4000 0000 0000 5423 gets one at once.
"""

from __future__ import annotations

from sandbox.core import listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit

FRAUD_TYPES = (
    "card_never_received",
    "fraudulent_card_application",
    "made_with_counterfeit_card",
    "made_with_lost_card",
    "made_with_stolen_card",
    "misc",
    "unauthorized_use_of_card",
)


def create_warning(store: Store, charge: dict, fraud_type: str = "made_with_stolen_card") -> dict:
    clock_id = store.meta_for(charge["id"]).get("clock_id")
    warning = objects.build(
        "radar.early_fraud_warning",
        id=store.new_id("issfr"),
        actionable=not charge["refunded"] and not charge["disputed"],
        charge=charge["id"],
        created=store.now(clock_id),
        fraud_type=fraud_type,
        livemode=False,
    )
    store.insert(warning)
    store.meta_for(warning["id"])["payment_intent"] = charge["payment_intent"]
    emit(store, "radar.early_fraud_warning.created", warning, clock_id=clock_id)
    return warning


@route("POST", "/_sandbox/charges/<charge_id>/early_fraud_warning", auth=False)
def helper_create(req: ApiRequest, charge_id: str) -> dict:
    params = req.validate({"fraud_type": P.OneOf(*FRAUD_TYPES)})
    charge = req.store.fetch("charge", charge_id, "charge")
    return create_warning(req.store, charge, params.get("fraud_type") or "made_with_stolen_card")


@route("GET", "/v1/radar/early_fraud_warnings/<warning_id>")
def retrieve(req: ApiRequest, warning_id: str) -> dict:
    req.validate({})
    return req.store.fetch("radar.early_fraud_warning", warning_id, "early_fraud_warning")


@route("GET", "/v1/radar/early_fraud_warnings")
def list_warnings(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "charge": str, "payment_intent": str})
    created = listing.created_filter(params.get("created"))

    def matches(warning: dict) -> bool:
        return (
            (not params.get("charge") or warning["charge"] == params["charge"])
            and (
                not params.get("payment_intent")
                or req.store.meta_for(warning["id"]).get("payment_intent") == params["payment_intent"]
            )
            and created(warning)
        )

    return listing.paginate(
        params, filter(matches, req.store.all("radar.early_fraud_warning")), "/v1/radar/early_fraud_warnings"
    )
