"""Invoices built from charge specs: settings, specs and lines, drafts (``create_invoice``).

An invoice holds all its lines in ``lines.data`` (``GET /v1/invoices/{id}/lines`` pages through
them). A line is built from a *charge spec* (a plain dict: amount, currency, description, period,
quantity, price, proration, subscription, subscription_item, invoice_item), which is what the
subscription code and ``create_preview`` both produce, so a preview and the real invoice share
the same arithmetic.
"""

from __future__ import annotations

from sandbox.core import objects
from sandbox.core.objects import clock_of
from sandbox.core.store import Store
from sandbox.events.emit import emit


def get_invoice(store: Store, invoice_id: str, param: str = "invoice") -> dict:
    return store.fetch("invoice", invoice_id, param)


def invoice_subscription(invoice: dict) -> str | None:
    """The subscription an invoice bills: ``parent.subscription_details.subscription`` (the current API has no
    top-level ``subscription`` on an invoice)."""
    return ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")


# charge specs and lines


def spec(
    *,
    amount: int,
    currency: str,
    description: str | None,
    period: dict,
    quantity: int | None = 1,
    price: dict | None = None,
    proration: bool = False,
    subscription: str | None = None,
    subscription_item: str | None = None,
    invoice_item: str | None = None,
    metadata: dict | None = None,
) -> dict:
    return {
        "amount": amount,
        "currency": currency,
        "description": description,
        "period": period,
        "quantity": quantity,
        "price": price,
        "proration": proration,
        "subscription": subscription,
        "subscription_item": subscription_item,
        "invoice_item": invoice_item,
        "metadata": metadata or {},
    }


def spec_of_invoice_item(store: Store, item: dict) -> dict:
    price_id = (item["pricing"] or {}).get("price_details", {}) or {}
    price = store.get("price", price_id.get("price")) if price_id.get("price") else None
    parent = item["parent"] or {}
    subscription = (parent.get("subscription_details") or {}).get("subscription")
    return spec(
        amount=item["amount"],
        currency=item["currency"],
        description=item["description"],
        period=item["period"],
        quantity=item["quantity"],
        price=price,
        proration=item["proration"],
        subscription=subscription,
        subscription_item=store.meta_for(item["id"]).get("subscription_item"),
        invoice_item=item["id"],
        metadata=item["metadata"],
    )


def build_line(store: Store, s: dict, invoice_id: str | None, preview: bool = False) -> dict:
    price = s["price"]
    details = {"invoice_item": None, "proration": s["proration"], "proration_details": {"credited_items": None}}
    if s["invoice_item"]:
        parent = {
            "type": "invoice_item_details",
            "invoice_item_details": {**details, "invoice_item": s["invoice_item"], "subscription": s["subscription"]},
            "subscription_item_details": None,
        }
    else:
        parent = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                **details,
                "subscription": s["subscription"],
                "subscription_item": s["subscription_item"],
            },
        }
    quantity = s["quantity"]
    if price is not None:
        unit_decimal = price["unit_amount_decimal"]
    else:
        unit_decimal = str(s["amount"] // quantity) if quantity else str(s["amount"])
    return objects.build(
        "line_item",
        id=store.new_id("il_tmp" if preview else "il"),
        amount=s["amount"],
        currency=s["currency"],
        description=s["description"],
        discount_amounts=[],
        discountable=not s["proration"],
        discounts=[],
        invoice=invoice_id,
        livemode=False,
        metadata=dict(s["metadata"]),
        period=dict(s["period"]),
        quantity=quantity,
        subscription=s["subscription"],
        pretax_credit_amounts=[],
        taxes=[],
        parent=parent,
        pricing={
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]} if price else None,
            "unit_amount_decimal": unit_decimal,
        },
        subtotal=s["amount"],
        quantity_decimal=str(quantity) if quantity is not None else None,
    )


def pending_items(store: Store, customer_id: str, subscription_id: str | None, include_unbound: bool = True):
    """Pending invoice items (oldest first) the next invoice of this customer/subscription takes."""
    found = []
    for item in reversed(list(store.all("invoiceitem"))):
        if item["customer"] != customer_id or item["invoice"] is not None:
            continue
        bound = ((item["parent"] or {}).get("subscription_details") or {}).get("subscription")
        if bound == subscription_id or (bound is None and include_unbound):
            found.append(item)
    return found


def pending_specs(store: Store, customer_id: str, subscription_id: str | None) -> list[dict]:
    """Charge specs of the :func:`pending_items` of this customer/subscription."""
    return [spec_of_invoice_item(store, item) for item in pending_items(store, customer_id, subscription_id)]


def recompute(invoice: dict) -> None:
    total = sum(line["amount"] for line in invoice["lines"]["data"])
    invoice["subtotal"] = invoice["subtotal_excluding_tax"] = total
    invoice["total"] = invoice["total_excluding_tax"] = total
    if invoice["status"] == "draft":
        due = max(0, total + (invoice["starting_balance"] or 0))
        invoice["amount_due"] = invoice["amount_remaining"] = due


def build_invoice(
    store: Store,
    customer: dict,
    specs: list[dict],
    *,
    billing_reason: str,
    subscription: dict | None = None,
    period: tuple[int, int] | None = None,
    description: str | None = None,
    metadata: dict | None = None,
    auto_advance: bool = True,
    default_payment_method: str | None = None,
    currency: str | None = None,
    preview: bool = False,
) -> dict:
    """A draft invoice with a line per spec (not stored; :func:`create_invoice` stores it)."""
    clock = customer["test_clock"]
    now = store.now(clock)
    invoice_id = ("upcoming_in_" + store.new_id("x")[2:]) if preview else store.new_id("in")
    currency = currency or (specs[0]["currency"] if specs else None) or customer["currency"] or "usd"
    lines = [build_line(store, s, None if preview else invoice_id, preview) for s in specs]
    start, end = period or (now, now)
    invoice = objects.build(
        "invoice",
        id=invoice_id,
        account_country="US",
        account_name="Sandbox",
        account_tax_ids=None,
        amount_due=0,
        amount_paid=0,
        amount_remaining=0,
        amount_shipping=0,
        amount_overpaid=0,
        attempt_count=0,
        attempted=False,
        auto_advance=auto_advance and not preview,
        automatic_tax={"enabled": False, "liability": None, "status": None, "disabled_reason": None, "provider": None},
        automatically_finalizes_at=None,
        billing_reason=billing_reason,
        collection_method="charge_automatically",
        created=now,
        currency=currency,
        custom_fields=None,
        customer=customer["id"],
        customer_account=None,
        customer_address=customer["address"],
        customer_email=customer["email"],
        customer_name=customer["name"],
        customer_phone=customer["phone"],
        customer_shipping=customer["shipping"],
        customer_tax_exempt=customer["tax_exempt"],
        customer_tax_ids=[],
        default_payment_method=default_payment_method,
        default_source=None,
        default_tax_rates=[],
        description=description,
        discounts=[],
        due_date=None,
        effective_at=None,
        ending_balance=None,
        footer=None,
        from_invoice=None,
        hosted_invoice_url=None,
        invoice_pdf=None,
        issuer={"type": "self"},
        last_finalization_error=None,
        latest_revision=None,
        lines={
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        livemode=False,
        metadata=dict(metadata or {}),
        next_payment_attempt=None,
        number=None,
        on_behalf_of=None,
        parent=(
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription["metadata"]),
                    "subscription": subscription["id"],
                },
            }
            if subscription
            else None
        ),
        payment_settings={"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        period_end=end,
        period_start=start,
        post_payment_credit_notes_amount=0,
        pre_payment_credit_notes_amount=0,
        receipt_number=None,
        rendering=None,
        shipping_cost=None,
        shipping_details=None,
        starting_balance=customer["balance"],
        statement_descriptor=None,
        status="draft",
        status_transitions={"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None, "voided_at": None},
        test_clock=clock,
        total_discount_amounts=[],
        total_pretax_credit_amounts=[],
        total_taxes=[],
        webhooks_delivered_at=None,
    )
    recompute(invoice)
    return invoice


def create_invoice(store: Store, customer: dict, specs: list[dict], **kwargs) -> dict:
    """Store a draft invoice built from ``specs``; invoice items named by the specs now belong to it."""
    invoice = build_invoice(store, customer, specs, **kwargs)
    if customer["currency"] is None:
        customer["currency"] = invoice["currency"]
    store.insert(invoice)
    for s in specs:
        if s["invoice_item"]:
            item = store.get("invoiceitem", s["invoice_item"])
            if item is not None:
                item["invoice"] = invoice["id"]
    emit(store, "invoice.created", invoice, clock_id=clock_of(invoice))
    return invoice
