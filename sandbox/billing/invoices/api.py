"""The invoice endpoints: ``/v1/invoices`` (create, retrieve, update, delete, finalize, pay, void,
mark_uncollectible, list, lines) and ``/v1/invoice_payments``."""

from __future__ import annotations

import copy

from sandbox.billing.invoices.collect import (
    attempt,
    failure_error,
    finalize,
    finalize_and_collect,
    mark_paid,
    mark_uncollectible,
    void,
)
from sandbox.billing.invoices.drafts import create_invoice, get_invoice, invoice_subscription, pending_specs
from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.objects import clock_of
from sandbox.core.routing import ApiRequest, route
from sandbox.events.emit import emit, previous_attributes
from sandbox.resources import customers as customers_mod
from sandbox.resources import payment_methods

# endpoints: invoices

INVOICE_CREATE = {
    "customer": str,
    "subscription": str,
    "auto_advance": bool,
    "collection_method": P.OneOf("charge_automatically", "send_invoice"),
    "currency": str,
    "default_payment_method": str,
    "description": str,
    "metadata": P.METADATA,
    "pending_invoice_items_behavior": P.OneOf("include", "exclude"),
    "footer": str,
}


@route("POST", "/v1/invoices")
def create_endpoint(req: ApiRequest) -> dict:
    params = req.validate(INVOICE_CREATE)
    store = req.store
    P.require(params, "customer")
    if params.get("collection_method") == "send_invoice":
        raise errors.invalid_request(
            "The sandbox only supports collection_method=charge_automatically.", "collection_method"
        )
    customer = customers_mod.get_customer(store, params["customer"])
    subscription = None
    if params.get("subscription"):
        subscription = store.fetch("subscription", params["subscription"], "subscription")
    pm = params.get("default_payment_method")
    if pm:
        pm = payment_methods.payment_method_for_customer(store, pm, customer, "default_payment_method")["id"]
    specs = []
    if params.get("pending_invoice_items_behavior") == "include":
        specs = pending_specs(store, customer["id"], subscription["id"] if subscription else None)
    invoice = create_invoice(
        store,
        customer,
        specs,
        billing_reason="manual",
        subscription=subscription,
        description=params.get("description"),
        metadata=params.get("metadata"),
        auto_advance=params.get("auto_advance", False) if params.get("auto_advance") is not None else False,
        default_payment_method=pm,
        currency=(params.get("currency") or "").lower() or None,
    )
    if params.get("footer"):
        invoice["footer"] = params["footer"]
    return invoice


@route("GET", "/v1/invoices/<invoice_id>")
def retrieve_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    req.validate({})
    return get_invoice(req.store, invoice_id, "id")


@route("POST", "/v1/invoices/<invoice_id>")
def update_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    params = req.validate(
        {"metadata": P.METADATA, "description": str, "auto_advance": bool, "default_payment_method": str, "footer": str}
    )
    store = req.store
    invoice = get_invoice(store, invoice_id, "id")
    before = copy.deepcopy(invoice)
    # As on Stripe: once finalized, an open invoice may still turn automatic collection off (which is how
    # retries are stopped) or on; amounts and the rest are fixed.
    editable = {"metadata", "description", "footer"} | ({"auto_advance"} if invoice["status"] == "open" else set())
    if invoice["status"] != "draft" and set(params) - editable:
        raise errors.state_error("Only metadata, description and footer can change once an invoice is finalized.")
    if invoice["status"] == "open" and params.get("auto_advance") is False:
        invoice["next_payment_attempt"] = None
    if "metadata" in params:
        invoice["metadata"] = P.apply_metadata(invoice["metadata"], params["metadata"])
    for field in ("description", "footer", "auto_advance"):
        if field in params:
            invoice[field] = params[field]
    if params.get("default_payment_method"):
        customer = customers_mod.get_customer(store, invoice["customer"])
        invoice["default_payment_method"] = payment_methods.payment_method_for_customer(
            store, params["default_payment_method"], customer, "default_payment_method"
        )["id"]
    changes = previous_attributes(before, invoice)
    if changes:
        emit(store, "invoice.updated", invoice, changes, clock_id=clock_of(invoice))
    return invoice


@route("DELETE", "/v1/invoices/<invoice_id>")
def delete_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    req.validate({})
    store = req.store
    invoice = get_invoice(store, invoice_id, "id")
    if invoice["status"] != "draft":
        raise errors.state_error("You can only delete draft invoices.")
    for item in store.all("invoiceitem"):
        if item["invoice"] == invoice_id:
            item["invoice"] = None
    store.delete("invoice", invoice_id)
    emit(store, "invoice.deleted", invoice, clock_id=clock_of(invoice))
    return objects.deleted("invoice", invoice_id)


@route("POST", "/v1/invoices/<invoice_id>/finalize")
def finalize_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    params = req.validate({"auto_advance": bool})
    store = req.store
    invoice = get_invoice(store, invoice_id, "id")
    if params.get("auto_advance") is not None:
        invoice["auto_advance"] = params["auto_advance"]
    if invoice["auto_advance"]:
        # Stripe attempts an auto-advancing invoice about an hour after finalization; the sandbox at once.
        finalize_and_collect(store, invoice, off_session=True)
    else:
        finalize(store, invoice)
    return invoice


@route("POST", "/v1/invoices/<invoice_id>/pay")
def pay_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    params = req.validate(
        {"payment_method": str, "paid_out_of_band": bool, "off_session": bool, "forgive": bool, "source": str}
    )
    store = req.store
    invoice = get_invoice(store, invoice_id, "id")
    if invoice["status"] == "draft":
        finalize(store, invoice)
    if invoice["status"] == "paid":
        raise errors.state_error("Invoice is already paid.", code="invoice_already_paid")
    if invoice["status"] != "open":
        raise errors.state_error(f"You cannot pay an invoice with status {invoice['status']}.")
    if params.get("paid_out_of_band"):
        return mark_paid(store, invoice, out_of_band=True)
    pm = params.get("payment_method")
    if pm:
        customer = customers_mod.get_customer(store, invoice["customer"])
        pm = payment_methods.payment_method_for_customer(store, pm, customer, "payment_method")["id"]
    off_session = params.get("off_session")
    failure = attempt(store, invoice, payment_method=pm, off_session=True if off_session is None else off_session)
    if failure is not None:
        raise failure_error(failure)
    return invoice


@route("POST", "/v1/invoices/<invoice_id>/void")
def void_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    req.validate({})
    return void(req.store, get_invoice(req.store, invoice_id, "id"))


@route("POST", "/v1/invoices/<invoice_id>/mark_uncollectible")
def uncollectible_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    req.validate({})
    return mark_uncollectible(req.store, get_invoice(req.store, invoice_id, "id"))


@route("GET", "/v1/invoices")
def list_endpoint(req: ApiRequest) -> dict:
    params = req.validate(
        {
            **listing.LIST_PARAMS,
            "customer": str,
            "subscription": str,
            "status": P.OneOf("draft", "open", "paid", "uncollectible", "void"),
            "collection_method": str,
            "due_date": P.ANY,
        }
    )
    created = listing.created_filter(params.get("created"))

    def matches(invoice: dict) -> bool:
        return (
            (not params.get("customer") or invoice["customer"] == params["customer"])
            and (not params.get("subscription") or invoice_subscription(invoice) == params["subscription"])
            and (not params.get("status") or invoice["status"] == params["status"])
            and created(invoice)
        )

    return listing.paginate(params, filter(matches, req.store.all("invoice")), "/v1/invoices")


@route("GET", "/v1/invoices/<invoice_id>/lines")
def lines_endpoint(req: ApiRequest, invoice_id: str) -> dict:
    params = req.validate(listing.LIST_PARAMS)
    invoice = get_invoice(req.store, invoice_id, "id")
    return listing.paginate(params, invoice["lines"]["data"], f"/v1/invoices/{invoice_id}/lines")


@route("GET", "/v1/invoice_payments")
def list_invoice_payments(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "invoice": str, "payment": P.ANY, "status": str})

    def matches(payment: dict) -> bool:
        return (not params.get("invoice") or payment["invoice"] == params["invoice"]) and (
            not params.get("status") or payment["status"] == params["status"]
        )

    return listing.paginate(params, filter(matches, req.store.all("invoice_payment")), "/v1/invoice_payments")


@route("GET", "/v1/invoice_payments/<payment_id>")
def retrieve_invoice_payment(req: ApiRequest, payment_id: str) -> dict:
    req.validate({})
    return req.store.fetch("invoice_payment", payment_id, "id")
