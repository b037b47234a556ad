"""Products: create (optionally with ``default_price_data``), retrieve, update, delete, list."""

from __future__ import annotations

import copy

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes

PACKAGE_DIMENSIONS = {"height": P.ANY, "length": P.ANY, "weight": P.ANY, "width": P.ANY}
UPDATE_SCHEMA = {
    "active": bool,
    "default_price": str,
    "description": str,
    "images": P.ListOf(str),
    "marketing_features": P.ListOf({"name": str}),
    "metadata": P.METADATA,
    "name": str,
    "package_dimensions": PACKAGE_DIMENSIONS,
    "shippable": bool,
    "statement_descriptor": str,
    "tax_code": str,
    "unit_label": str,
    "url": str,
}
CREATE_SCHEMA = {
    **{k: v for k, v in UPDATE_SCHEMA.items() if k != "default_price"},
    "id": str,
    "type": P.OneOf("good", "service"),
    "default_price_data": P.ANY,
}


def get_product(store: Store, product_id: str, param: str = "product") -> dict:
    return store.fetch("product", product_id, param)


def create_product(store: Store, params: dict, param_prefix: str = "") -> dict:
    """Create a product from validated ``params`` (also used by prices' ``product_data``)."""
    P.require(params, "name")
    product_id = params.get("id") or store.new_id("prod", 14)
    if store.get("product", product_id) is not None:
        param = f"{param_prefix}[id]" if param_prefix else "id"
        raise errors.invalid_request(f"Product already exists: {product_id}", param, "resource_already_exists")
    now = store.now()
    product = objects.build(
        "product",
        id=product_id,
        active=True if params.get("active") is None else params["active"],
        created=now,
        default_price=None,
        description=None,
        images=[],
        livemode=False,
        marketing_features=[],
        metadata={},
        name=params["name"],
        package_dimensions=None,
        shippable=None,
        statement_descriptor=None,
        tax_code=None,
        unit_label=None,
        updated=now,
        url=None,
        type=params.get("type") or "service",
    )
    _apply(product, params)
    store.insert(product)
    emit(store, "product.created", product)
    return product


def _apply(product: dict, params: dict) -> None:
    for field in (
        "active",
        "description",
        "images",
        "name",
        "package_dimensions",
        "shippable",
        "statement_descriptor",
        "tax_code",
        "unit_label",
        "url",
    ):
        if field in params:
            product[field] = params[field]
    if product["images"] is None:
        product["images"] = []
    if product["active"] is None:
        product["active"] = True
    if "marketing_features" in params:
        product["marketing_features"] = params["marketing_features"] or []
    if "metadata" in params:
        product["metadata"] = P.apply_metadata(product["metadata"], params["metadata"])


@route("GET", "/v1/products/<product_id>")
def retrieve(req: ApiRequest, product_id: str) -> dict:
    req.validate({})
    return get_product(req.store, product_id, "id")


@route("POST", "/v1/products/<product_id>")
def update(req: ApiRequest, product_id: str) -> dict:
    params = req.validate(UPDATE_SCHEMA)
    store = req.store
    product = get_product(store, product_id, "id")
    before = copy.deepcopy(product)
    if "default_price" in params:
        price_id = params["default_price"]
        if price_id is not None:
            price = store.get("price", price_id)
            if price is None or price["product"] != product_id:
                raise errors.resource_missing("price", price_id, "default_price")
        product["default_price"] = price_id
    _apply(product, params)
    changes = previous_attributes(before, product)
    if changes:
        product["updated"] = store.now()
        emit(store, "product.updated", product, changes)
    return product


@route("DELETE", "/v1/products/<product_id>")
def delete(req: ApiRequest, product_id: str) -> dict:
    req.validate({})
    store = req.store
    product = get_product(store, product_id, "id")
    if any(price["product"] == product_id for price in store.all("price")):
        raise errors.state_error("This product cannot be deleted because it has one or more user-created prices.", "id")
    store.delete("product", product_id)
    emit(store, "product.deleted", product)
    return objects.deleted("product", product_id)


@route("GET", "/v1/products")
def list_products(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "active": bool, "ids": P.ListOf(str), "shippable": bool, "url": str})
    created = listing.created_filter(params.get("created"))
    ids = set(params.get("ids") or [])

    def matches(product: dict) -> bool:
        return (
            (params.get("active") is None or product["active"] == params["active"])
            and (not ids or product["id"] in ids)
            and (params.get("shippable") is None or product["shippable"] == params["shippable"])
            and (not params.get("url") or product["url"] == params["url"])
            and created(product)
        )

    return listing.paginate(params, filter(matches, req.store.all("product")), "/v1/products")


@route("GET", "/v1/products/<product_id>/features")
def list_product_features(req: ApiRequest, product_id: str) -> dict:
    """Entitlement features attached to a product. dj-stripe reads them when it syncs a product; the
    sandbox does not emulate Stripe Entitlements, so the list is always empty (of an existing product)."""
    params = req.validate(listing.LIST_PARAMS)
    get_product(req.store, product_id, "id")
    return listing.paginate(params, [], f"/v1/products/{product_id}/features")
