"""Setup intents (saving a card for later): create (optionally confirming), retrieve, update, confirm, cancel, list."""

from __future__ import annotations

from sandbox.core import errors, listing
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.events.emit import emit
from sandbox.payments import engine as payments
from sandbox.resources.payment_methods import get_payment_method

CREATE_SCHEMA = {
    "customer": str,
    "description": str,
    "metadata": P.METADATA,
    "payment_method": str,
    "payment_method_types": P.ListOf(str),
    "payment_method_options": P.ANY,
    "usage": P.OneOf("off_session", "on_session"),
    "confirm": bool,
    "return_url": str,
    "automatic_payment_methods": P.ANY,
    "mandate_data": P.ANY,
    "use_stripe_sdk": bool,
    "payment_method_data": P.ANY,
    "flow_directions": P.ListOf(str),
}
CONFIRM_SCHEMA = {
    "payment_method": str,
    "return_url": str,
    "mandate_data": P.ANY,
    "payment_method_options": P.ANY,
    "use_stripe_sdk": bool,
}


def _get(req: ApiRequest, si_id: str) -> dict:
    return req.store.fetch("setup_intent", si_id, "intent")


def _confirm(req: ApiRequest, si: dict, params: dict) -> dict:
    if si["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise errors.state_error(
            f"This SetupIntent's status is {si['status']}; it cannot be confirmed.",
            code="setup_intent_unexpected_state",
        )
    if params.get("payment_method"):
        si["payment_method"] = get_payment_method(req.store, params["payment_method"])["id"]
    payments.confirm_setup_intent(req.store, si, return_url=params.get("return_url"))
    if si["status"] == "requires_payment_method" and si["last_setup_error"]:
        raise payments.decline_error_for(si)
    return si


@route("POST", "/v1/setup_intents")
def create(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    customer_id = params.get("customer")
    if customer_id:
        store.fetch("customer", customer_id, "customer")
    pm_id = get_payment_method(store, params["payment_method"])["id"] if params.get("payment_method") else None
    si = payments.create_setup_intent(
        store,
        customer_id=customer_id,
        payment_method_id=pm_id,
        description=params.get("description"),
        metadata=P.apply_metadata({}, params.get("metadata")),
        usage=params.get("usage") or "off_session",
        return_url=params.get("return_url"),
    )
    if params.get("confirm"):
        _confirm(req, si, {"return_url": params.get("return_url")})
    return si


@route("GET", "/v1/setup_intents/<si_id>")
def retrieve(req: ApiRequest, si_id: str) -> dict:
    req.validate({"client_secret": str})
    return _get(req, si_id)


@route("POST", "/v1/setup_intents/<si_id>")
def update(req: ApiRequest, si_id: str) -> dict:
    params = req.validate({"metadata": P.METADATA, "description": str, "payment_method": str, "customer": str})
    si = _get(req, si_id)
    if "metadata" in params:
        si["metadata"] = P.apply_metadata(si["metadata"], params["metadata"])
    if "description" in params:
        si["description"] = params["description"]
    if params.get("customer"):
        si["customer"] = params["customer"]
    if params.get("payment_method"):
        si["payment_method"] = get_payment_method(req.store, params["payment_method"])["id"]
        si["status"] = "requires_confirmation"
    return si


@route("POST", "/v1/setup_intents/<si_id>/confirm")
def confirm(req: ApiRequest, si_id: str) -> dict:
    return _confirm(req, _get(req, si_id), req.validate(CONFIRM_SCHEMA))


@route("POST", "/v1/setup_intents/<si_id>/cancel")
def cancel(req: ApiRequest, si_id: str) -> dict:
    params = req.validate({"cancellation_reason": P.OneOf("abandoned", "duplicate", "requested_by_customer")})
    si = _get(req, si_id)
    if si["status"] in ("succeeded", "canceled"):
        raise errors.state_error(
            f"You cannot cancel this SetupIntent because it has a status of {si['status']}.",
            code="setup_intent_unexpected_state",
        )
    si["status"] = "canceled"
    si["cancellation_reason"] = params.get("cancellation_reason")
    si["next_action"] = None
    emit(req.store, "setup_intent.canceled", si)
    return si


@route("GET", "/v1/setup_intents")
def list_setup_intents(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "customer": str, "payment_method": str, "attach_to_self": bool})
    created = listing.created_filter(params.get("created"))

    def matches(si: dict) -> bool:
        return (
            (not params.get("customer") or si["customer"] == params["customer"])
            and (not params.get("payment_method") or si["payment_method"] == params["payment_method"])
            and created(si)
        )

    return listing.paginate(params, filter(matches, req.store.all("setup_intent")), "/v1/setup_intents")
