"""Card payment methods: create, retrieve, update, list, attach and detach.

A payment method remembers its card number in the store's hidden meta so that
:func:`sandbox.payments.cards.charge_outcome` knows how it behaves. Stripe's test ids (``pm_card_visa``)
are not stored objects: using one (retrieve, attach, a customer's default) makes a fresh
``pm_…`` copy, as Stripe does.
"""

from __future__ import annotations

import copy
import datetime

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.payments import cards

ADDRESS = {"city": str, "country": str, "line1": str, "line2": str, "postal_code": str, "state": str}
BILLING_DETAILS = {"address": ADDRESS, "email": str, "name": str, "phone": str, "tax_id": str}
ALLOW_REDISPLAY = P.OneOf("always", "limited", "unspecified")

CREATE_SCHEMA = {
    "type": str,
    "card": {"number": str, "exp_month": int, "exp_year": int, "cvc": str, "token": str, "networks": P.ANY},
    "billing_details": BILLING_DETAILS,
    "metadata": P.METADATA,
    "allow_redisplay": ALLOW_REDISPLAY,
    "customer": str,
    "payment_method": str,
}
UPDATE_SCHEMA = {
    "billing_details": BILLING_DETAILS,
    "card": {"exp_month": int, "exp_year": int, "networks": P.ANY},
    "metadata": P.METADATA,
    "allow_redisplay": ALLOW_REDISPLAY,
}


def create_card_payment_method(
    store: Store,
    number: str,
    *,
    exp_month: int | None = None,
    exp_year: int | None = None,
    cvc_given: bool = False,
    billing_details: dict | None = None,
    metadata: dict | None = None,
    allow_redisplay: str | None = None,
    param: str = "card[number]",
) -> dict:
    """Store a new card payment method for ``number`` (raises ``incorrect_number`` for a bad number)."""
    card = cards.lookup(number, param)
    exp_year = cards.check_expiry(exp_month, exp_year, store.now())
    today = datetime.datetime.fromtimestamp(store.now(), datetime.UTC)
    details = objects.template("payment_method")["billing_details"]
    details.update(address=dict.fromkeys(details["address"]), email=None, name=None, phone=None, tax_id=None)
    _merge(details, billing_details or {})
    pm = objects.build(
        "payment_method",
        id=store.new_id("pm"),
        allow_redisplay=allow_redisplay or "unspecified",
        billing_details=details,
        card={
            "brand": card.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass" if cvc_given else "unchecked",
            },
            "country": card.country,
            "display_brand": cards.DISPLAY_BRANDS.get(card.brand, card.brand),
            "exp_month": exp_month or today.month,
            "exp_year": exp_year or today.year + 1,
            "fingerprint": cards.fingerprint(card.number),
            "funding": card.funding,
            "generated_from": None,
            "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
            "regulated_status": "unregulated",
        },
        created=store.now(),
        customer=None,
        livemode=False,
        metadata=metadata or {},
        type="card",
        customer_account=None,
    )
    store.insert(pm)
    store.meta_for(pm["id"])["card_number"] = card.number
    return pm


def get_payment_method(store: Store, pm_id: str, param: str = "payment_method") -> dict:
    """A stored payment method, or a fresh copy for a test id like ``pm_card_visa``."""
    pm = store.get("payment_method", pm_id)
    if pm is not None:
        return pm
    number = cards.number_for_test_id(pm_id)
    if number is not None:
        return create_card_payment_method(store, number)
    raise errors.resource_missing("PaymentMethod", pm_id, param)


def attach(store: Store, pm: dict, customer: dict) -> dict:
    """Attach ``pm`` to ``customer`` the way Stripe does: the card is checked, declining cards fail."""
    if pm["customer"] == customer["id"]:
        return pm
    if pm["customer"] is not None:
        raise errors.state_error(
            "The payment method you provided has already been attached to a customer.", "payment_method"
        )
    card = cards.card_of(store, pm)
    if card.attach_fails and card.decline is not None:
        raise cards.decline_error(card.decline, payment_method=copy.deepcopy(pm))
    pm["customer"] = customer["id"]
    emit(store, "payment_method.attached", pm, clock_id=customer.get("test_clock"))
    return pm


def payment_method_for_customer(store: Store, pm_id: str, customer: dict, param: str) -> dict:
    """A payment method a customer may use: a test id becomes a fresh attached copy; others must be attached."""
    if cards.number_for_test_id(pm_id) is not None and store.get("payment_method", pm_id) is None:
        return attach(store, get_payment_method(store, pm_id, param), customer)
    pm = store.get("payment_method", pm_id)
    if pm is None:
        raise errors.resource_missing("PaymentMethod", pm_id, param)
    if pm["customer"] != customer["id"]:
        raise errors.StripeError(
            400,
            f"The customer does not have a payment method with the ID {pm_id}. "
            "The payment method must be attached to the customer.",
            code="resource_missing",
            param=param,
        )
    return pm


def detach(store: Store, pm: dict) -> dict:
    customer_id = pm["customer"]
    if customer_id is None:
        raise errors.state_error(
            "The payment method you provided is not attached to a customer so detachment is impossible.",
            "payment_method",
        )
    pm["customer"] = None
    customer = store.get("customer", customer_id)
    if customer is not None and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        customer["invoice_settings"]["default_payment_method"] = None
    emit(store, "payment_method.detached", pm, {"customer": customer_id})
    return pm


def _merge(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


@route("POST", "/v1/payment_methods")
def create(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    if params.get("customer") or params.get("payment_method"):
        raise errors.invalid_request(
            "Cloning payment methods to connected accounts is not supported by the sandbox.", "payment_method"
        )
    P.require(params, "type")
    if params["type"] != "card":
        raise errors.invalid_request(f"The sandbox only supports card payment methods, not {params['type']!r}.", "type")
    card = params.get("card")
    if not card:
        raise errors.parameter_missing("card")
    token = card.get("token")
    if token:
        number = cards.number_for_test_id(token)
        if number is None:
            raise errors.resource_missing("token", token, "card[token]")
        param = "card[token]"
    else:
        P.require(card, "number", "exp_month", "exp_year")
        number, param = card["number"], "card[number]"
    pm = create_card_payment_method(
        store,
        number,
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        cvc_given=bool(card.get("cvc")),
        billing_details=params.get("billing_details"),
        metadata=P.apply_metadata({}, params.get("metadata")),
        allow_redisplay=params.get("allow_redisplay"),
        param=param,
    )
    return pm


@route("GET", "/v1/payment_methods/<pm_id>")
def retrieve(req: ApiRequest, pm_id: str) -> dict:
    req.validate({})
    return get_payment_method(req.store, pm_id, "payment_method")


@route("POST", "/v1/payment_methods/<pm_id>")
def update(req: ApiRequest, pm_id: str) -> dict:
    params = req.validate(UPDATE_SCHEMA)
    store = req.store
    pm = store.get("payment_method", pm_id)
    if pm is None:
        raise errors.resource_missing("PaymentMethod", pm_id, "payment_method")
    before = copy.deepcopy(pm)
    card = params.get("card") or {}
    if card.get("exp_month") is not None or card.get("exp_year") is not None:
        card["exp_year"] = cards.check_expiry(
            card.get("exp_month", pm["card"]["exp_month"]), card.get("exp_year", pm["card"]["exp_year"]), store.now()
        )
    if "billing_details" in params:
        _merge(pm["billing_details"], params["billing_details"] or {})
    for field in ("exp_month", "exp_year"):
        if (params.get("card") or {}).get(field) is not None:
            pm["card"][field] = params["card"][field]
    if "metadata" in params:
        pm["metadata"] = P.apply_metadata(pm["metadata"], params["metadata"])
    if params.get("allow_redisplay"):
        pm["allow_redisplay"] = params["allow_redisplay"]
    changes = previous_attributes(before, pm)
    if changes:
        emit(store, "payment_method.updated", pm, changes)
    return pm


@route("POST", "/v1/payment_methods/<pm_id>/attach")
def attach_endpoint(req: ApiRequest, pm_id: str) -> dict:
    params = req.validate({"customer": str, "customer_account": str})
    store = req.store
    P.require(params, "customer")
    customer = store.fetch("customer", params["customer"], "customer")
    return attach(store, get_payment_method(store, pm_id, "payment_method"), customer)


@route("POST", "/v1/payment_methods/<pm_id>/detach")
def detach_endpoint(req: ApiRequest, pm_id: str) -> dict:
    req.validate({})
    pm = req.store.get("payment_method", pm_id)
    if pm is None:
        raise errors.resource_missing("PaymentMethod", pm_id, "payment_method")
    return detach(req.store, pm)


LIST_SCHEMA = {**listing.LIST_PARAMS, "customer": str, "customer_account": str, "type": str, "allow_redisplay": str}


def _list(req: ApiRequest, params: dict, customer_id: str | None, url: str) -> dict:
    created = listing.created_filter(params.get("created"))

    def matches(pm: dict) -> bool:
        return (
            (customer_id is None or pm["customer"] == customer_id)
            and (not params.get("type") or pm["type"] == params["type"])
            and (not params.get("allow_redisplay") or pm["allow_redisplay"] == params["allow_redisplay"])
            and created(pm)
        )

    return listing.paginate(params, filter(matches, req.store.all("payment_method")), url)


@route("GET", "/v1/payment_methods")
def list_payment_methods(req: ApiRequest) -> dict:
    params = req.validate(LIST_SCHEMA)
    customer_id = params.get("customer")
    if customer_id:
        req.store.fetch("customer", customer_id, "customer")
    return _list(req, params, customer_id, "/v1/payment_methods")


@route("GET", "/v1/customers/<customer_id>/payment_methods")
def list_customer_payment_methods(req: ApiRequest, customer_id: str) -> dict:
    params = req.validate({k: v for k, v in LIST_SCHEMA.items() if k not in ("customer", "customer_account")})
    req.store.fetch("customer", customer_id, "customer")
    return _list(req, params, customer_id, f"/v1/customers/{customer_id}/payment_methods")


@route("GET", "/v1/customers/<customer_id>/payment_methods/<pm_id>")
def retrieve_customer_payment_method(req: ApiRequest, customer_id: str, pm_id: str) -> dict:
    req.validate({})
    pm = req.store.get("payment_method", pm_id)
    if pm is None or pm["customer"] != customer_id:
        raise errors.resource_missing("PaymentMethod", pm_id, "payment_method")
    return pm
