"""Customers: create, retrieve, update, delete, list (``email`` filter).

A customer created with ``test_clock`` lives on that clock's time (:meth:`Store.now`).
``invoice_settings[default_payment_method]`` must name a payment method attached to the customer,
or a Stripe test id (``pm_card_visa``), which is copied and attached on the spot.
"""

from __future__ import annotations

import copy
import secrets

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.resources import payment_methods

ADDRESS = payment_methods.ADDRESS
SHIPPING = {"address": ADDRESS, "name": str, "phone": str}
INVOICE_SETTINGS = {
    "custom_fields": P.ListOf({"name": str, "value": str}),
    "default_payment_method": str,
    "footer": str,
    "rendering_options": {"amount_tax_display": str, "template": str},
}
UPDATE_SCHEMA = {
    "address": ADDRESS,
    "balance": int,
    "description": str,
    "email": str,
    "invoice_prefix": str,
    "invoice_settings": INVOICE_SETTINGS,
    "metadata": P.METADATA,
    "name": str,
    "next_invoice_sequence": int,
    "phone": str,
    "preferred_locales": P.ListOf(str),
    "shipping": SHIPPING,
    "tax_exempt": P.OneOf("none", "exempt", "reverse"),
}
CREATE_SCHEMA = {**UPDATE_SCHEMA, "payment_method": str, "test_clock": str}


def get_customer(store: Store, customer_id: str, param: str = "customer") -> dict:
    return store.fetch("customer", customer_id, param)


def _address(value: dict | None) -> dict | None:
    if value is None:
        return None
    return {**dict.fromkeys(ADDRESS), **value}


def _shipping(value: dict | None) -> dict | None:
    if value is None:
        return None
    return {"address": _address(value.get("address")), "name": value.get("name"), "phone": value.get("phone")}


def _apply(store: Store, customer: dict, params: dict) -> None:
    """Set the fields shared by create and update."""
    for field in ("balance", "description", "email", "name", "phone", "tax_exempt", "next_invoice_sequence"):
        if field in params:
            customer[field] = params[field]
    if params.get("invoice_prefix"):
        customer["invoice_prefix"] = params["invoice_prefix"]
    if customer["tax_exempt"] is None:
        customer["tax_exempt"] = "none"
    if "address" in params:
        customer["address"] = _address(params["address"])
    if "shipping" in params:
        customer["shipping"] = _shipping(params["shipping"])
    if "preferred_locales" in params:
        customer["preferred_locales"] = params["preferred_locales"] or []
    if "metadata" in params:
        customer["metadata"] = P.apply_metadata(customer["metadata"], params["metadata"])
    settings = params.get("invoice_settings")
    if settings:
        current = customer["invoice_settings"]
        for field in ("custom_fields", "footer"):
            if field in settings:
                current[field] = settings[field]
        if "rendering_options" in settings:
            options = settings["rendering_options"]
            current["rendering_options"] = (
                None if options is None else {"amount_tax_display": None, "template": None, **options}
            )
        if "default_payment_method" in settings:
            pm_id = settings["default_payment_method"]
            current["default_payment_method"] = (
                payment_methods.payment_method_for_customer(
                    store, pm_id, customer, "invoice_settings[default_payment_method]"
                )["id"]
                if pm_id
                else None
            )


def new_customer(
    store: Store, *, clock_id: str | None = None, email: str | None = None, name: str | None = None
) -> dict:
    """A new customer with Stripe's defaults, on ``clock_id``'s time; not stored yet."""
    return objects.build(
        "customer",
        id=store.new_id("cus", 14),
        address=None,
        balance=0,
        created=store.now(clock_id),
        currency=None,
        default_source=None,
        delinquent=False,
        description=None,
        discount=None,
        email=email,
        invoice_prefix=secrets.token_hex(4).upper(),
        invoice_settings={
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        livemode=False,
        metadata={},
        name=name,
        next_invoice_sequence=1,
        phone=None,
        preferred_locales=[],
        shipping=None,
        tax_exempt="none",
        test_clock=clock_id,
    )


@route("POST", "/v1/customers")
def create(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    clock_id = params.get("test_clock")
    if clock_id:
        store.fetch("test_helpers.test_clock", clock_id, "test_clock")
    customer = new_customer(store, clock_id=clock_id)
    # Validate everything (including payment methods) before the customer becomes visible.
    pm_id = params.get("payment_method")
    pm = payment_methods.get_payment_method(store, pm_id, "payment_method") if pm_id else None
    store.insert(customer)
    try:
        if pm is not None:
            payment_methods.attach(store, pm, customer)
        _apply(store, customer, params)
    except errors.StripeError:
        store.delete("customer", customer["id"])
        raise
    emit(store, "customer.created", customer, clock_id=clock_id)
    return customer


@route("GET", "/v1/customers/<customer_id>")
def retrieve(req: ApiRequest, customer_id: str) -> dict:
    req.validate({})
    if customer_id in req.store.deleted:
        return req.store.deleted[customer_id]
    return get_customer(req.store, customer_id, "id")


@route("POST", "/v1/customers/<customer_id>")
def update(req: ApiRequest, customer_id: str) -> dict:
    params = req.validate(UPDATE_SCHEMA)
    store = req.store
    customer = get_customer(store, customer_id, "id")
    before = copy.deepcopy(customer)
    try:
        _apply(store, customer, params)
    except errors.StripeError:
        customer.clear()
        customer.update(before)
        raise
    changes = previous_attributes(before, customer)
    if changes:
        emit(store, "customer.updated", customer, changes, clock_id=customer["test_clock"])
    return customer


@route("DELETE", "/v1/customers/<customer_id>")
def delete(req: ApiRequest, customer_id: str) -> dict:
    req.validate({})
    store = req.store
    customer = get_customer(store, customer_id, "id")
    stub = objects.deleted("customer", customer_id)
    store.delete("customer", customer_id, stub)
    emit(store, "customer.deleted", customer, clock_id=customer["test_clock"])
    return stub


@route("GET", "/v1/customers")
def list_customers(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "email": str, "test_clock": str})
    created = listing.created_filter(params.get("created"))

    def matches(customer: dict) -> bool:
        return (
            (not params.get("email") or customer["email"] == params["email"])
            and (not params.get("test_clock") or customer["test_clock"] == params["test_clock"])
            and created(customer)
        )

    return listing.paginate(params, filter(matches, req.store.all("customer")), "/v1/customers")
