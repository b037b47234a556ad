"""Checkout sessions (``mode=subscription`` and ``mode=setup``) and their hosted payment page.

- API: create, retrieve, list, expire, ``GET /v1/checkout/sessions/{id}/line_items``.
- ``url`` is ``/_sandbox/checkout/{id}``: a plain HTML form (email, card number, expiry, CVC, name).
  4242… completes the session and redirects (303) to ``success_url`` (``{CHECKOUT_SESSION_ID}``
  substituted); a declining card re-shows the form with the decline message and the session stays
  open; a 3-D Secure card shows ``/_sandbox/checkout/{id}/3ds`` first.
- ``POST /_sandbox/checkout/{id}/complete`` (``card``, ``email``, ``name``, ``three_d_secure=complete|fail``)
  does the same without HTML, answering JSON ``{"status", "error", "redirect_url", "session"}``.

Completing a session (the card form, 3-D Secure, the subscription or setup intent) is in
:mod:`sandbox.resources.checkout_completion`.
"""

from __future__ import annotations

import copy

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, base_url, route
from sandbox.core.store import Store
from sandbox.events.emit import emit
from sandbox.resources import customers

DAY = 86400
CREATE_SCHEMA = {
    "mode": P.OneOf("subscription", "setup", "payment"),
    "line_items": P.ListOf({"price": str, "quantity": int, "adjustable_quantity": P.ANY, "tax_rates": P.ANY}),
    "customer": str,
    "customer_email": str,
    "client_reference_id": str,
    "success_url": str,
    "cancel_url": str,
    "return_url": str,
    "metadata": P.METADATA,
    "currency": str,
    "allow_promotion_codes": bool,
    "subscription_data": {
        "trial_period_days": int,
        "trial_end": int,
        "metadata": P.METADATA,
        "description": str,
        "trial_settings": P.ANY,
        "billing_cycle_anchor": int,
        "proration_behavior": str,
        "default_tax_rates": P.ANY,
    },
    "setup_intent_data": {"metadata": P.METADATA, "description": str, "on_behalf_of": str},
    "payment_method_types": P.ListOf(str),
    "payment_method_collection": P.OneOf("always", "if_required"),
    "expires_at": int,
    "locale": str,
    "billing_address_collection": P.OneOf("auto", "required"),
    "customer_update": P.ANY,
    "automatic_tax": P.ANY,
    "tax_id_collection": P.ANY,
    "consent_collection": P.ANY,
    "ui_mode": P.OneOf("hosted"),
    "customer_creation": P.OneOf("always", "if_required"),
    "discounts": P.ANY,
    "custom_text": P.ANY,
    "submit_type": str,
}


def get_session(store: Store, session_id: str) -> dict:
    return store.fetch("checkout.session", session_id, "session")


def success_redirect(session: dict) -> str | None:
    url = session["success_url"]
    return url.replace("{CHECKOUT_SESSION_ID}", session["id"]) if url else None


@route("POST", "/v1/checkout/sessions")
def create(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    P.require(params, "mode")
    mode = params["mode"]
    if mode == "payment":
        raise errors.invalid_request("The sandbox supports Checkout in subscription and setup mode only.", "mode")
    P.require(params, "success_url")
    customer = None
    if params.get("customer"):
        customer = customers.get_customer(store, params["customer"])
    line_items = []
    currency = params.get("currency")
    if mode == "subscription":
        if not params.get("line_items"):
            raise errors.parameter_missing("line_items")
        for i, entry in enumerate(params["line_items"]):
            price = store.get("price", entry.get("price") or "")
            if price is None:
                raise errors.resource_missing("price", entry.get("price"), f"line_items[{i}][price]")
            if price["type"] != "recurring":
                raise errors.invalid_request(
                    "The sandbox's subscription-mode Checkout needs recurring prices.", f"line_items[{i}][price]"
                )
            quantity = entry.get("quantity") or 1
            amount = (price["unit_amount"] or 0) * quantity
            product = store.get("product", price["product"])
            line_items.append(
                objects.build(
                    "item",
                    id=store.new_id("li"),
                    amount_discount=0,
                    amount_subtotal=amount,
                    amount_tax=0,
                    amount_total=amount,
                    currency=price["currency"],
                    description=product["name"] if product else None,
                    price=copy.deepcopy(price),
                    quantity=quantity,
                    metadata={},
                    adjustable_quantity=None,
                )
            )
        currency = line_items[0]["currency"]
    elif not currency:
        raise errors.parameter_missing("currency")
    subtotal = sum(item["amount_subtotal"] for item in line_items)
    trial = (params.get("subscription_data") or {}).get("trial_period_days") or (
        params.get("subscription_data") or {}
    ).get("trial_end")
    now = store.now()
    session_id = "cs_test_" + store.new_id("x", 58)[2:]
    session = objects.build(
        "checkout.session",
        id=session_id,
        after_expiration=None,
        allow_promotion_codes=params.get("allow_promotion_codes"),
        amount_subtotal=subtotal if mode == "subscription" else None,
        amount_total=(0 if trial else subtotal) if mode == "subscription" else None,
        automatic_tax={"enabled": False, "liability": None, "status": None, "provider": None},
        billing_address_collection=params.get("billing_address_collection"),
        cancel_url=params.get("cancel_url"),
        client_reference_id=params.get("client_reference_id"),
        client_secret=None,
        consent=None,
        consent_collection=None,
        created=now,
        currency=currency.lower() if currency else None,
        custom_fields=[],
        custom_text={
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        customer=customer["id"] if customer else None,
        customer_creation=None if customer else "always",
        customer_details=None,
        customer_email=params.get("customer_email"),
        expires_at=params.get("expires_at") or now + DAY,
        invoice=None,
        invoice_creation=None,
        livemode=False,
        locale=params.get("locale"),
        metadata=P.apply_metadata({}, params.get("metadata")),
        mode=mode,
        payment_intent=None,
        payment_link=None,
        payment_method_collection="always" if mode == "subscription" else None,
        payment_method_configuration_details=None,
        payment_method_options={},
        payment_method_types=["card"],
        payment_status="no_payment_required" if mode == "setup" else "unpaid",
        phone_number_collection={"enabled": False},
        recovered_from=None,
        saved_payment_method_options=None,
        setup_intent=None,
        shipping_address_collection=None,
        shipping_cost=None,
        shipping_options=[],
        status="open",
        submit_type=None,
        subscription=None,
        success_url=params["success_url"],
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        ui_mode="hosted",
        url=f"{base_url(store)}/_sandbox/checkout/{session_id}",
        adaptive_pricing=None,
        discounts=[],
        collected_information=None,
        permissions=None,
        wallet_options=None,
        origin_context=None,
        currency_conversion=None,
        customer_account=None,
        integration_identifier=None,
        managed_payments=None,
    )
    store.insert(session)
    meta = store.meta_for(session_id)
    meta["line_items"] = line_items
    meta["subscription_data"] = params.get("subscription_data") or {}
    meta["setup_intent_data"] = params.get("setup_intent_data") or {}
    return session


@route("GET", "/v1/checkout/sessions/<session_id>")
def retrieve(req: ApiRequest, session_id: str) -> dict:
    req.validate({})
    return get_session(req.store, session_id)


@route("GET", "/v1/checkout/sessions/<session_id>/line_items")
def line_items(req: ApiRequest, session_id: str) -> dict:
    params = req.validate(listing.LIST_PARAMS)
    get_session(req.store, session_id)
    items = req.store.meta_for(session_id).get("line_items", [])
    return listing.paginate(params, items, f"/v1/checkout/sessions/{session_id}/line_items")


@route("GET", "/v1/checkout/sessions")
def list_sessions(req: ApiRequest) -> dict:
    params = req.validate(
        {
            **listing.LIST_PARAMS,
            "customer": str,
            "subscription": str,
            "payment_intent": str,
            "status": P.OneOf("open", "complete", "expired"),
            "customer_details": P.ANY,
            "payment_link": str,
        }
    )
    created = listing.created_filter(params.get("created"))

    def matches(session: dict) -> bool:
        return all(
            not params.get(k) or session[k] == params[k] for k in ("customer", "subscription", "status")
        ) and created(session)

    return listing.paginate(params, filter(matches, req.store.all("checkout.session")), "/v1/checkout/sessions")


@route("POST", "/v1/checkout/sessions/<session_id>/expire")
def expire(req: ApiRequest, session_id: str) -> dict:
    req.validate({})
    session = get_session(req.store, session_id)
    if session["status"] != "open":
        raise errors.invalid_request(
            'Only Checkout Sessions with a status in ["open"] can be expired. '
            f'This Checkout Session has a status of "{session["status"]}".'
        )
    session["status"] = "expired"
    session["url"] = None
    emit(req.store, "checkout.session.expired", session)
    return session
