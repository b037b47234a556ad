"""Invoice items: pending charges for a customer's next invoice (``/v1/invoiceitems``)."""

from __future__ import annotations

import copy

from sandbox.billing import pricing
from sandbox.billing.invoices.drafts import build_line, get_invoice, recompute, spec_of_invoice_item
from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.resources import customers as customers_mod

# invoice items


def create_invoice_item(store: Store, customer: dict, params: dict) -> dict:
    clock = customer["test_clock"]
    now = store.now(clock)
    price = None
    if params.get("_price") is not None:  # a proration: its own amount, for the price it prorates
        price = params["_price"]
        amount, currency = params["amount"], price["currency"]
        quantity = params.get("quantity")
    elif params.get("price"):
        price = store.fetch("price", params["price"], "price")
    if params.get("_price") is not None:
        pass
    elif price is not None:
        quantity = params.get("quantity") or 1
        amount = pricing.amount_for(price, quantity)
        currency = price["currency"]
    elif params.get("amount") is not None:
        quantity = params.get("quantity") or 1
        amount = params["amount"]
        if params.get("unit_amount") is not None:
            raise errors.invalid_request("You may only specify one of amount and unit_amount.", "unit_amount")
        currency = params.get("currency")
    elif params.get("unit_amount") is not None:
        quantity = params.get("quantity") or 1
        amount = params["unit_amount"] * quantity
        currency = params.get("currency")
    else:
        raise errors.parameter_missing("amount")
    if not currency:
        raise errors.parameter_missing("currency")
    subscription_id = params.get("subscription")
    if subscription_id:
        store.fetch("subscription", subscription_id, "subscription")
    invoice = None
    if params.get("invoice"):
        invoice = get_invoice(store, params["invoice"])
        if invoice["status"] != "draft":
            raise errors.state_error("Invoice items can only be added to draft invoices.", "invoice")
    period = params.get("period") or {}
    item = objects.build(
        "invoiceitem",
        id=store.new_id("ii"),
        amount=amount,
        currency=currency.lower(),
        customer=customer["id"],
        customer_account=None,
        date=now,
        description=params.get("description"),
        discountable=params.get("discountable", True) if params.get("discountable") is not None else True,
        discounts=[],
        invoice=None,
        livemode=False,
        metadata=P.apply_metadata({}, params.get("metadata")),
        net_amount=amount,
        parent=(
            {"type": "subscription_details", "subscription_details": {"subscription": subscription_id}}
            if subscription_id
            else None
        ),
        period={"start": period.get("start", now), "end": period.get("end", now)},
        pricing={
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]} if price else None,
            "unit_amount_decimal": price["unit_amount_decimal"] if price else str(amount // (quantity or 1)),
        },
        proration=bool(params.get("_proration")),
        quantity=quantity,
        quantity_decimal=None if quantity is None else str(quantity),
        tax_rates=[],
        test_clock=clock,
    )
    if params.get("_subscription_item"):
        store.meta_for(item["id"])["subscription_item"] = params["_subscription_item"]
    store.insert(item)
    emit(store, "invoiceitem.created", item, clock_id=clock)
    if invoice is not None:
        item["invoice"] = invoice["id"]
        invoice["lines"]["data"].append(build_line(store, spec_of_invoice_item(store, item), invoice["id"]))
        recompute(invoice)
        emit(store, "invoice.updated", invoice, clock_id=clock)
    return item


def get_invoice_item(store: Store, item_id: str, param: str = "id") -> dict:
    return store.fetch("invoiceitem", item_id, param)


# endpoints: invoice items

ITEM_SCHEMA = {
    "amount": int,
    "currency": str,
    "customer": str,
    "description": str,
    "discountable": bool,
    "invoice": str,
    "metadata": P.METADATA,
    "period": {"start": int, "end": int},
    "price": str,
    "pricing": {"price": str},
    "quantity": int,
    "subscription": str,
    "unit_amount": int,
    "unit_amount_decimal": str,
}


@route("POST", "/v1/invoiceitems")
def create_item_endpoint(req: ApiRequest) -> dict:
    params = req.validate(ITEM_SCHEMA)
    P.require(params, "customer")
    if (params.get("pricing") or {}).get("price"):
        params["price"] = params["pricing"]["price"]
    customer = customers_mod.get_customer(req.store, params["customer"])
    return create_invoice_item(req.store, customer, params)


@route("GET", "/v1/invoiceitems/<item_id>")
def retrieve_item_endpoint(req: ApiRequest, item_id: str) -> dict:
    req.validate({})
    return get_invoice_item(req.store, item_id)


@route("POST", "/v1/invoiceitems/<item_id>")
def update_item_endpoint(req: ApiRequest, item_id: str) -> dict:
    params = req.validate(
        {
            "amount": int,
            "description": str,
            "metadata": P.METADATA,
            "quantity": int,
            "period": {"start": int, "end": int},
        }
    )
    store = req.store
    item = get_invoice_item(store, item_id)
    if item["invoice"] is not None:
        invoice = store.get("invoice", item["invoice"])
        if invoice is not None and invoice["status"] != "draft":
            raise errors.state_error("This invoice item is on a finalized invoice and can no longer change.")
    before = copy.deepcopy(item)
    if "amount" in params:
        item["amount"] = item["net_amount"] = params["amount"]
    if "quantity" in params:
        item["quantity"] = params["quantity"]
        item["quantity_decimal"] = str(params["quantity"])
    if "description" in params:
        item["description"] = params["description"]
    if "period" in params:
        item["period"] = {**item["period"], **params["period"]}
    if "metadata" in params:
        item["metadata"] = P.apply_metadata(item["metadata"], params["metadata"])
    changes = previous_attributes(before, item)
    if changes:
        emit(store, "invoiceitem.updated", item, changes, clock_id=item["test_clock"])
    return item


@route("DELETE", "/v1/invoiceitems/<item_id>")
def delete_item_endpoint(req: ApiRequest, item_id: str) -> dict:
    req.validate({})
    store = req.store
    item = get_invoice_item(store, item_id)
    if item["invoice"] is not None:
        invoice = store.get("invoice", item["invoice"])
        if invoice is not None and invoice["status"] != "draft":
            raise errors.state_error("This invoice item is on a finalized invoice and can no longer be deleted.")
        if invoice is not None:
            invoice["lines"]["data"] = [
                line
                for line in invoice["lines"]["data"]
                if (line["parent"].get("invoice_item_details") or {}).get("invoice_item") != item_id
            ]
            recompute(invoice)
    store.delete("invoiceitem", item_id)
    emit(store, "invoiceitem.deleted", item, clock_id=item["test_clock"])
    return objects.deleted("invoiceitem", item_id)


@route("GET", "/v1/invoiceitems")
def list_items_endpoint(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "customer": str, "invoice": str, "pending": bool})
    created = listing.created_filter(params.get("created"), "date")

    def matches(item: dict) -> bool:
        return (
            (not params.get("customer") or item["customer"] == params["customer"])
            and (not params.get("invoice") or item["invoice"] == params["invoice"])
            and (params.get("pending") is None or (item["invoice"] is None) == params["pending"])
            and created(item)
        )

    return listing.paginate(params, filter(matches, req.store.all("invoiceitem")), "/v1/invoiceitems")
