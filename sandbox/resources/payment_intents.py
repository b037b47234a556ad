"""Payment intents: create (optionally confirming), retrieve, update, confirm, cancel, list.

The charging itself is :mod:`sandbox.payments.engine`. A confirmation that is declined answers 402
``card_error`` carrying the updated ``payment_intent`` (as Stripe does); one that needs 3-D Secure
answers 200 with ``status=requires_action`` and ``next_action.redirect_to_url``.
"""

from __future__ import annotations

import copy

from sandbox.core import errors, listing
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.events.emit import emit, previous_attributes
from sandbox.payments import engine as payments
from sandbox.payments import minimums
from sandbox.resources.payment_methods import get_payment_method

OFF_SESSION = P.ANY  # true/false or "one_off"/"recurring"
COMMON = {
    "amount": int,
    "currency": str,
    "customer": str,
    "description": str,
    "metadata": P.METADATA,
    "payment_method": str,
    "payment_method_types": P.ListOf(str),
    "payment_method_options": P.ANY,
    "receipt_email": str,
    "setup_future_usage": P.OneOf("off_session", "on_session"),
    "statement_descriptor": str,
    "statement_descriptor_suffix": str,
    "shipping": P.ANY,
}
CREATE_SCHEMA = {
    **COMMON,
    "confirm": bool,
    "off_session": OFF_SESSION,
    "return_url": str,
    "automatic_payment_methods": {"enabled": bool, "allow_redirects": P.OneOf("always", "never")},
    "capture_method": P.OneOf("automatic", "automatic_async"),
    "confirmation_method": P.OneOf("automatic", "manual"),
    "error_on_requires_action": bool,
    "use_stripe_sdk": bool,
    "mandate_data": P.ANY,
    "payment_method_data": P.ANY,
}
CONFIRM_SCHEMA = {
    "payment_method": str,
    "off_session": OFF_SESSION,
    "return_url": str,
    "setup_future_usage": P.OneOf("off_session", "on_session"),
    "receipt_email": str,
    "payment_method_options": P.ANY,
    "use_stripe_sdk": bool,
    "mandate_data": P.ANY,
    "error_on_requires_action": bool,
    "shipping": P.ANY,
}


def _off_session(value) -> bool:
    return value in ("true", "one_off", "recurring", True)


def _get(req: ApiRequest, pi_id: str) -> dict:
    return req.store.fetch("payment_intent", pi_id, "intent")


def _payment_method(req: ApiRequest, pm_id: str, customer_id: str | None) -> dict:
    pm = get_payment_method(req.store, pm_id, "payment_method")
    if pm["customer"] is not None and pm["customer"] != customer_id:
        raise errors.invalid_request(
            f"The provided PaymentMethod {pm_id} was previously used with a PaymentIntent without Customer "
            "attachment, shared with a connected account without Customer attachment, or was detached from a "
            "Customer. It may not be used again.",
            "payment_method",
        )
    return pm


def _confirm(req: ApiRequest, pi: dict, params: dict) -> dict:
    if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise errors.state_error(
            f"This PaymentIntent's status is {pi['status']}, but it must be requires_payment_method, "
            "requires_confirmation or requires_action to be confirmed.",
            code="payment_intent_unexpected_state",
        )
    if params.get("payment_method"):
        pi["payment_method"] = _payment_method(req, params["payment_method"], pi["customer"])["id"]
    for field in ("setup_future_usage", "receipt_email"):
        if params.get(field):
            pi[field] = params[field]
    payments.confirm_payment_intent(
        req.store, pi, off_session=_off_session(params.get("off_session")), return_url=params.get("return_url")
    )
    if pi["status"] == "requires_payment_method" and pi["last_payment_error"]:
        raise payments.decline_error_for(pi)
    return pi


@route("POST", "/v1/payment_intents")
def create(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    P.require(params, "amount", "currency")
    minimums.check_amount(params["amount"], params["currency"])
    customer_id = params.get("customer")
    if customer_id:
        store.fetch("customer", customer_id, "customer")
    if params.get("off_session") is not None and not params.get("confirm"):
        raise errors.invalid_request("You may only specify `off_session` when `confirm` is true.", "off_session")
    pm_id = None
    if params.get("payment_method"):
        pm_id = _payment_method(req, params["payment_method"], customer_id)["id"]
    pi = payments.create_payment_intent(
        store,
        amount=params["amount"],
        currency=params["currency"],
        customer_id=customer_id,
        payment_method_id=pm_id,
        description=params.get("description"),
        metadata=P.apply_metadata({}, params.get("metadata")),
        setup_future_usage=params.get("setup_future_usage"),
        receipt_email=params.get("receipt_email"),
        statement_descriptor=params.get("statement_descriptor"),
        return_url=params.get("return_url"),
    )
    if params.get("confirm"):
        _confirm(req, pi, {"off_session": params.get("off_session"), "return_url": params.get("return_url")})
    return pi


@route("GET", "/v1/payment_intents/<pi_id>")
def retrieve(req: ApiRequest, pi_id: str) -> dict:
    req.validate({"client_secret": str})
    return _get(req, pi_id)


@route("POST", "/v1/payment_intents/<pi_id>")
def update(req: ApiRequest, pi_id: str) -> dict:
    params = req.validate(COMMON)
    pi = _get(req, pi_id)
    if pi["status"] in ("succeeded", "canceled", "processing"):
        raise errors.state_error(
            f"This PaymentIntent's status is {pi['status']} and it can no longer be updated.",
            code="payment_intent_unexpected_state",
        )
    if "amount" in params or "currency" in params:
        minimums.check_amount(params.get("amount", pi["amount"]), params.get("currency", pi["currency"]))
    before = copy.deepcopy(pi)
    for field in ("amount", "currency", "description", "receipt_email", "setup_future_usage", "statement_descriptor"):
        if field in params:
            pi[field] = params[field]
    if params.get("customer"):
        req.store.fetch("customer", params["customer"], "customer")
        pi["customer"] = params["customer"]
    if params.get("payment_method"):
        pi["payment_method"] = _payment_method(req, params["payment_method"], pi["customer"])["id"]
        pi["status"] = "requires_confirmation"
    if "metadata" in params:
        pi["metadata"] = P.apply_metadata(pi["metadata"], params["metadata"])
    changes = previous_attributes(before, pi)
    if changes:
        emit(req.store, "payment_intent.updated", pi, changes)
    return pi


@route("POST", "/v1/payment_intents/<pi_id>/confirm")
def confirm(req: ApiRequest, pi_id: str) -> dict:
    params = req.validate(CONFIRM_SCHEMA)
    return _confirm(req, _get(req, pi_id), params)


@route("POST", "/v1/payment_intents/<pi_id>/cancel")
def cancel(req: ApiRequest, pi_id: str) -> dict:
    params = req.validate(
        {"cancellation_reason": P.OneOf("abandoned", "duplicate", "fraudulent", "requested_by_customer")}
    )
    return payments.cancel_payment_intent(req.store, _get(req, pi_id), params.get("cancellation_reason"))


@route("GET", "/v1/payment_intents")
def list_payment_intents(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "customer": str, "customer_account": str})
    created = listing.created_filter(params.get("created"))
    customer_id = params.get("customer")

    def matches(pi: dict) -> bool:
        return (not customer_id or pi["customer"] == customer_id) and created(pi)

    return listing.paginate(params, filter(matches, req.store.all("payment_intent")), "/v1/payment_intents")
