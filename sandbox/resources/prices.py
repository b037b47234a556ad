"""Prices: create, retrieve, update, list.

Like Stripe, a price is immutable once created except for ``active`` (archiving), ``metadata``,
``nickname``, ``lookup_key`` and an unset ``tax_behavior``; the update schema simply does not
accept anything else. A lookup key names at most one price; ``transfer_lookup_key=true`` moves it
from the price holding it.
"""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.resources import products

RECURRING = {
    "interval": P.OneOf("day", "week", "month", "year"),
    "interval_count": int,
    "usage_type": P.OneOf("licensed", "metered"),
    "meter": str,
    "trial_period_days": int,
}
MAX_INTERVAL_COUNT = {"day": 365, "week": 52, "month": 12, "year": 1}
TAX_BEHAVIOR = P.OneOf("inclusive", "exclusive", "unspecified")
PRICE_DATA_SCHEMA = {
    "currency": str,
    "unit_amount": int,
    "unit_amount_decimal": str,
    "recurring": RECURRING,
    "tax_behavior": TAX_BEHAVIOR,
    "metadata": P.METADATA,
}
CREATE_SCHEMA = {
    **PRICE_DATA_SCHEMA,
    "active": bool,
    "billing_scheme": P.OneOf("per_unit", "tiered"),
    "lookup_key": str,
    "nickname": str,
    "product": str,
    "product_data": {
        "name": str,
        "active": bool,
        "id": str,
        "metadata": P.METADATA,
        "statement_descriptor": str,
        "tax_code": str,
        "unit_label": str,
    },
    "transfer_lookup_key": bool,
    "transform_quantity": {"divide_by": int, "round": P.OneOf("up", "down")},
}
UPDATE_SCHEMA = {
    "active": bool,
    "lookup_key": str,
    "metadata": P.METADATA,
    "nickname": str,
    "tax_behavior": TAX_BEHAVIOR,
    "transfer_lookup_key": bool,
}


def get_price(store: Store, price_id: str, param: str = "price") -> dict:
    return store.fetch("price", price_id, param)


def _name(prefix: str, field: str) -> str:
    return f"{prefix}[{field}]" if prefix else field


def _amounts(params: dict, prefix: str) -> tuple[int | None, str]:
    """``unit_amount`` and ``unit_amount_decimal`` from whichever of the two was given."""
    if params.get("unit_amount") is not None and params.get("unit_amount_decimal") is not None:
        raise errors.invalid_request(
            "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
            _name(prefix, "unit_amount_decimal"),
            "parameters_exclusive",
        )
    if params.get("unit_amount") is not None:
        amount = params["unit_amount"]
        if amount < 0:
            raise errors.invalid_request("This value must be greater than or equal to 0.", _name(prefix, "unit_amount"))
        return amount, str(amount)
    if params.get("unit_amount_decimal") is not None:
        try:
            decimal = Decimal(params["unit_amount_decimal"])
        except InvalidOperation:
            raise errors.invalid_request(
                f"Invalid decimal: {params['unit_amount_decimal']}", _name(prefix, "unit_amount_decimal")
            ) from None
        if decimal < 0:
            raise errors.invalid_request(
                "This value must be greater than or equal to 0.", _name(prefix, "unit_amount_decimal")
            )
        return (int(decimal) if decimal == decimal.to_integral_value() else None), format(decimal.normalize(), "f")
    raise errors.parameter_missing(_name(prefix, "unit_amount"))


def _recurring(store: Store, value: dict | None, prefix: str) -> dict | None:
    if value is None:
        return None
    name = _name(prefix, "recurring")
    if value.get("interval") is None:
        raise errors.parameter_missing(f"{name}[interval]")
    interval, count = value["interval"], value.get("interval_count") or 1
    if not 1 <= count <= MAX_INTERVAL_COUNT[interval]:
        raise errors.invalid_request(
            f"Invalid {name}[interval_count]: the maximum billing period is one year.", f"{name}[interval_count]"
        )
    usage_type = value.get("usage_type") or "licensed"
    meter = value.get("meter")
    if usage_type == "metered" and not meter:
        raise errors.invalid_request(
            "Metered prices must be backed by a billing meter: pass recurring[meter].",
            f"{name}[meter]",
            "parameter_missing",
        )
    if meter:
        if usage_type != "metered":
            raise errors.invalid_request("A meter can only be set on prices with usage_type=metered.", f"{name}[meter]")
        if store.get("billing.meter", meter) is None:
            raise errors.resource_missing("billing meter", meter, f"{name}[meter]")
    return {
        "interval": interval,
        "interval_count": count,
        "meter": meter,
        "usage_type": usage_type,
        "trial_period_days": value.get("trial_period_days"),
    }


def _claim_lookup_key(store: Store, price: dict, key: str | None, transfer: bool, param: str) -> None:
    """Give ``key`` to ``price``; refuse if another price holds it, unless ``transfer`` moves it."""
    if key is not None:
        holder = next((p for p in store.all("price") if p["lookup_key"] == key and p["id"] != price["id"]), None)
        if holder is not None:
            if not transfer:
                raise errors.invalid_request(
                    f"A price (`{holder['id']}`) already uses that lookup key. "
                    "Pass transfer_lookup_key=true to move it to this price.",
                    param,
                )
            before = copy.deepcopy(holder)
            holder["lookup_key"] = None
            emit(store, "price.updated", holder, previous_attributes(before, holder))
    price["lookup_key"] = key


def create_price(store: Store, params: dict, prefix: str = "") -> dict:
    """Create a price from validated ``params``; ``prefix`` names nested params in errors (``default_price_data``)."""
    if params.get("billing_scheme") == "tiered":
        raise errors.invalid_request("The sandbox does not support tiered prices yet.", "billing_scheme")
    P.require(params, "currency")
    product_id, product_data = params.get("product"), params.get("product_data")
    if product_id and product_data:
        raise errors.invalid_request(
            "You may only specify one of these parameters: product, product_data.", "product", "parameters_exclusive"
        )
    if not product_id and not product_data:
        raise errors.parameter_missing("product")
    if product_id:
        products.get_product(store, product_id)
    unit_amount, unit_amount_decimal = _amounts(params, prefix)
    recurring = _recurring(store, params.get("recurring"), prefix)
    transform = params.get("transform_quantity")
    if transform is not None:
        P.require(transform, "divide_by", "round")
    if product_data:
        product_id = products.create_product(store, product_data, "product_data")["id"]
    price = objects.build(
        "price",
        id=store.new_id("price"),
        active=True if params.get("active") is None else params["active"],
        billing_scheme="per_unit",
        created=store.now(),
        currency=params["currency"].lower(),
        custom_unit_amount=None,
        livemode=False,
        lookup_key=None,
        metadata=P.apply_metadata({}, params.get("metadata")),
        nickname=params.get("nickname"),
        product=product_id,
        recurring=recurring,
        tax_behavior=params.get("tax_behavior") or "unspecified",
        tiers_mode=None,
        transform_quantity=transform,
        type="recurring" if recurring else "one_time",
        unit_amount=unit_amount,
        unit_amount_decimal=unit_amount_decimal,
    )
    _claim_lookup_key(store, price, params.get("lookup_key"), bool(params.get("transfer_lookup_key")), "lookup_key")
    store.insert(price)
    emit(store, "price.created", price)
    return price


@route("POST", "/v1/prices")
def create(req: ApiRequest) -> dict:
    return create_price(req.store, req.validate(CREATE_SCHEMA))


@route("GET", "/v1/prices/<price_id>")
def retrieve(req: ApiRequest, price_id: str) -> dict:
    req.validate({})
    return get_price(req.store, price_id, "id")


@route("POST", "/v1/prices/<price_id>")
def update(req: ApiRequest, price_id: str) -> dict:
    params = req.validate(UPDATE_SCHEMA)
    store = req.store
    price = get_price(store, price_id, "id")
    before = copy.deepcopy(price)
    if params.get("tax_behavior") and params["tax_behavior"] != price["tax_behavior"]:
        if price["tax_behavior"] != "unspecified":
            raise errors.invalid_request(
                "tax_behavior cannot be changed once it is set to inclusive or exclusive.", "tax_behavior"
            )
        price["tax_behavior"] = params["tax_behavior"]
    if "lookup_key" in params:
        _claim_lookup_key(store, price, params["lookup_key"], bool(params.get("transfer_lookup_key")), "lookup_key")
    if params.get("active") is not None:
        price["active"] = params["active"]
    if "nickname" in params:
        price["nickname"] = params["nickname"]
    if "metadata" in params:
        price["metadata"] = P.apply_metadata(price["metadata"], params["metadata"])
    changes = previous_attributes(before, price)
    if changes:
        emit(store, "price.updated", price, changes)
    return price


@route("GET", "/v1/prices")
def list_prices(req: ApiRequest) -> dict:
    params = req.validate(
        {
            **listing.LIST_PARAMS,
            "active": bool,
            "currency": str,
            "lookup_keys": P.ListOf(str),
            "product": str,
            "recurring": {"interval": str, "meter": str, "usage_type": str},
            "type": P.OneOf("one_time", "recurring"),
        }
    )
    lookup_keys = set(params.get("lookup_keys") or [])
    if len(lookup_keys) > 10:
        raise errors.invalid_request("You may pass at most 10 lookup_keys.", "lookup_keys")
    recurring = params.get("recurring") or {}
    created = listing.created_filter(params.get("created"))

    def matches(price: dict) -> bool:
        if params.get("active") is not None and price["active"] != params["active"]:
            return False
        if params.get("currency") and price["currency"] != params["currency"].lower():
            return False
        if params.get("product") and price["product"] != params["product"]:
            return False
        if params.get("type") and price["type"] != params["type"]:
            return False
        if lookup_keys and price["lookup_key"] not in lookup_keys:
            return False
        for field, wanted in recurring.items():
            if wanted and (price["recurring"] or {}).get(field) != wanted:
                return False
        return created(price)

    return listing.paginate(params, filter(matches, req.store.all("price")), "/v1/prices")


@route("POST", "/v1/products")
def create_product_endpoint(req: ApiRequest) -> dict:
    """``POST /v1/products``. Here, not in products: ``default_price_data`` creates a price, and prices sit above
    products (a price names its product), so products never import prices."""
    params = req.validate(products.CREATE_SCHEMA)
    store = req.store
    price_data = params.pop("default_price_data", None)
    product = products.create_product(store, params)
    if price_data:
        price_params = P.validate(price_data, PRICE_DATA_SCHEMA, "default_price_data")
        price = create_price(store, {**price_params, "product": product["id"]}, "default_price_data")
        before = copy.deepcopy(product)
        product["default_price"] = price["id"]
        emit(store, "product.updated", product, previous_attributes(before, product))
    return product
