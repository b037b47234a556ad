"""The endpoints of subscriptions (``/v1/subscriptions``) and subscription items (``/v1/subscription_items``)."""

from __future__ import annotations

from sandbox.billing.subscriptions.create import create_subscription
from sandbox.billing.subscriptions.lifecycle import cancel_subscription
from sandbox.billing.subscriptions.state import PAYMENT_BEHAVIORS, PRORATION_BEHAVIORS, get_item, get_subscription
from sandbox.billing.subscriptions.update import update_subscription
from sandbox.core import objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.resources import customers as customers_mod

# endpoints

ITEM_PARAMS = {"price": str, "quantity": int, "metadata": P.METADATA, "tax_rates": P.ANY, "discounts": P.ANY}
CREATE_SCHEMA = {
    "customer": str,
    "items": P.ListOf(ITEM_PARAMS),
    "default_payment_method": str,
    "trial_end": P.ANY,
    "trial_period_days": int,
    "trial_from_plan": bool,
    "trial_settings": {"end_behavior": {"missing_payment_method": P.OneOf("create_invoice", "cancel", "pause")}},
    "metadata": P.METADATA,
    "payment_behavior": P.OneOf(*PAYMENT_BEHAVIORS),
    "proration_behavior": P.OneOf(*PRORATION_BEHAVIORS),
    "cancel_at_period_end": bool,
    "cancel_at": int,
    "billing_cycle_anchor": int,
    "collection_method": P.OneOf("charge_automatically"),
    "description": str,
    "off_session": bool,
    "payment_settings": P.ANY,
}


@route("POST", "/v1/subscriptions")
def create_endpoint(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    P.require(params, "customer", "items")
    customer = customers_mod.get_customer(store, params["customer"])
    trial_end = params.get("trial_end")
    if trial_end == "now":
        trial_end = None
    elif trial_end is not None:
        trial_end = P.coerce(trial_end, int, "trial_end")
    return create_subscription(
        store,
        customer_id=customer["id"],
        items=params["items"],
        default_payment_method=params.get("default_payment_method"),
        trial_end=trial_end,
        trial_period_days=params.get("trial_period_days"),
        trial_from_plan=bool(params.get("trial_from_plan")),
        metadata=params.get("metadata"),
        payment_behavior=params.get("payment_behavior") or "allow_incomplete",
        proration_behavior=params.get("proration_behavior") or "create_prorations",
        cancel_at_period_end=bool(params.get("cancel_at_period_end")),
        cancel_at=params.get("cancel_at"),
        billing_cycle_anchor=params.get("billing_cycle_anchor"),
        description=params.get("description"),
        trial_settings=params.get("trial_settings"),
    )


@route("GET", "/v1/subscriptions/<sub_id>")
def retrieve_endpoint(req: ApiRequest, sub_id: str) -> dict:
    req.validate({})
    return get_subscription(req.store, sub_id)


UPDATE_ITEM_PARAMS = {
    "id": str,
    "price": str,
    "quantity": int,
    "deleted": bool,
    "clear_usage": bool,
    "metadata": P.METADATA,
    "tax_rates": P.ANY,
    "discounts": P.ANY,
}
UPDATE_SCHEMA = {
    "items": P.ListOf(UPDATE_ITEM_PARAMS),
    "proration_behavior": P.OneOf(*PRORATION_BEHAVIORS),
    "proration_date": int,
    "payment_behavior": P.OneOf(*PAYMENT_BEHAVIORS),
    "cancel_at_period_end": bool,
    "cancel_at": int,
    "cancellation_details": {"comment": str, "feedback": str},
    "metadata": P.METADATA,
    "default_payment_method": str,
    "description": str,
    "trial_end": P.ANY,
    "off_session": bool,
    "billing_cycle_anchor": P.OneOf("now", "unchanged"),
    "collection_method": P.OneOf("charge_automatically"),
    "payment_settings": P.ANY,
}


@route("POST", "/v1/subscriptions/<sub_id>")
def update_endpoint(req: ApiRequest, sub_id: str) -> dict:
    params = req.validate(UPDATE_SCHEMA)
    return update_subscription(req.store, get_subscription(req.store, sub_id), params)


@route("DELETE", "/v1/subscriptions/<sub_id>")
def cancel_endpoint(req: ApiRequest, sub_id: str) -> dict:
    params = req.validate(
        {"invoice_now": bool, "prorate": bool, "cancellation_details": {"comment": str, "feedback": str}}
    )
    return cancel_subscription(req.store, get_subscription(req.store, sub_id), params)


@route("GET", "/v1/subscriptions")
def list_endpoint(req: ApiRequest) -> dict:
    from sandbox.core import listing

    params = req.validate(
        {
            **listing.LIST_PARAMS,
            "customer": str,
            "price": str,
            "status": P.OneOf(
                "active",
                "all",
                "canceled",
                "ended",
                "incomplete",
                "incomplete_expired",
                "past_due",
                "paused",
                "trialing",
                "unpaid",
            ),
            "test_clock": str,
            "collection_method": str,
            "current_period_end": P.ANY,
            "current_period_start": P.ANY,
        }
    )
    status = params.get("status")
    created = listing.created_filter(params.get("created"))

    def matches(sub: dict) -> bool:
        if params.get("customer") and sub["customer"] != params["customer"]:
            return False
        if params.get("test_clock") and sub["test_clock"] != params["test_clock"]:
            return False
        if params.get("price") and all(item["price"]["id"] != params["price"] for item in sub["items"]["data"]):
            return False
        if status is None and sub["status"] in ("canceled", "incomplete_expired"):
            return False
        if status == "ended" and sub["status"] not in ("canceled", "incomplete_expired"):
            return False
        if status not in (None, "all", "ended") and sub["status"] != status:
            return False
        return created(sub)

    return listing.paginate(params, filter(matches, req.store.all("subscription")), "/v1/subscriptions")


# subscription items


@route("GET", "/v1/subscription_items")
def list_items(req: ApiRequest) -> dict:
    from sandbox.core import listing

    params = req.validate({**listing.LIST_PARAMS, "subscription": str})
    P.require(params, "subscription")
    sub = get_subscription(req.store, params["subscription"], "subscription")
    return listing.paginate(
        params, list(reversed(sub["items"]["data"])), f"/v1/subscription_items?subscription={sub['id']}"
    )


@route("GET", "/v1/subscription_items/<item_id>")
def retrieve_item(req: ApiRequest, item_id: str) -> dict:
    req.validate({})
    return get_item(req.store, item_id)[1]


ITEM_UPDATE_SCHEMA = {
    "price": str,
    "quantity": int,
    "metadata": P.METADATA,
    "proration_behavior": P.OneOf(*PRORATION_BEHAVIORS),
    "proration_date": int,
    "payment_behavior": P.OneOf(*PAYMENT_BEHAVIORS),
    "off_session": bool,
    "tax_rates": P.ANY,
    "discounts": P.ANY,
}


def _item_change(req: ApiRequest, sub: dict, item_change: dict, params: dict) -> dict:
    update = {"items": [item_change]}
    for key in ("proration_behavior", "proration_date", "payment_behavior"):
        if params.get(key) is not None:
            update[key] = params[key]
    return update_subscription(req.store, sub, update)


@route("POST", "/v1/subscription_items")
def create_item(req: ApiRequest) -> dict:
    params = req.validate({**ITEM_UPDATE_SCHEMA, "subscription": str})
    P.require(params, "subscription", "price")
    sub = get_subscription(req.store, params["subscription"], "subscription")
    known = {item["id"] for item in sub["items"]["data"]}
    change = {k: params[k] for k in ("price", "quantity", "metadata") if params.get(k) is not None}
    _item_change(req, sub, change, params)
    return next(item for item in sub["items"]["data"] if item["id"] not in known)


@route("POST", "/v1/subscription_items/<item_id>")
def update_item(req: ApiRequest, item_id: str) -> dict:
    params = req.validate(ITEM_UPDATE_SCHEMA)
    sub, _ = get_item(req.store, item_id)
    change = {"id": item_id, **{k: params[k] for k in ("price", "quantity", "metadata") if params.get(k) is not None}}
    _item_change(req, sub, change, params)
    return get_item(req.store, item_id)[1]


@route("DELETE", "/v1/subscription_items/<item_id>")
def delete_item(req: ApiRequest, item_id: str) -> dict:
    params = req.validate(
        {"proration_behavior": P.OneOf(*PRORATION_BEHAVIORS), "proration_date": int, "clear_usage": bool}
    )
    sub, _ = get_item(req.store, item_id)
    _item_change(req, sub, {"id": item_id, "deleted": True}, params)
    return objects.deleted("subscription_item", item_id)
