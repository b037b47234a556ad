"""Invoices and invoice items: building, finalizing, paying (with retries), voiding; their endpoints.

An invoice holds all its lines in ``lines.data`` (``GET /v1/invoices/{id}/lines`` pages through
them). A line is built from a *charge spec* (a plain dict: amount, currency, description, period,
quantity, price, proration, subscription, subscription_item, invoice_item), which is what the
subscription code and ``create_preview`` both produce, so a preview and the real invoice share
the same arithmetic.

Paying goes through ``sandbox.payments.pay`` (the payments module) when it exists, else a small
shim on :func:`sandbox.payments.cards.charge_outcome`. Hidden state: ``meta[invoice]["payment_intent"]``.
"""

from __future__ import annotations

import copy
import html
import importlib

from werkzeug import Response

from sandbox.billing import periods
from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, current_request, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes
from sandbox.payments import cards
from sandbox.resources import customers as customers_mod
from sandbox.resources import payment_methods

try:  # helper C's payments module; until it lands, a shim below stands in.
    payments = importlib.import_module("sandbox.payments.engine")
except ImportError:  # pragma: no cover - depends on which phase is installed
    payments = None

SETTINGS_KEY = "_sandbox_billing_settings"
DEFAULT_SETTINGS = {
    # Days between successive payment attempts after a failed renewal (Stripe's smart-retry default is
    # about 4 attempts over 2 weeks); after the last one fails, the subscription ends per after_final_failure.
    "retry_days": [3, 5, 7],
    "after_final_failure": "canceled",  # or "unpaid", "past_due"
    # A renewal invoice is created as a draft and finalized (then charged) this many seconds later.
    "finalize_delay": 3600,
    # invoice.upcoming this many days before a renewal.
    "upcoming_days": 3,
    # customer.subscription.trial_will_end this many days before a trial ends.
    "trial_will_end_days": 3,
    # An incomplete subscription expires this long after creation.
    "incomplete_expires": 23 * 3600,
}


def settings(store: Store) -> dict:
    current = store.meta_for(SETTINGS_KEY)
    for key, value in DEFAULT_SETTINGS.items():
        current.setdefault(key, copy.deepcopy(value))
    return current


def get_invoice(store: Store, invoice_id: str, param: str = "invoice") -> dict:
    invoice = store.get("invoice", invoice_id)
    if invoice is None:
        raise errors.resource_missing("invoice", invoice_id, param)
    return invoice


def clock_of(obj: dict) -> str | None:
    return obj.get("test_clock")


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


def _recompute(invoice: dict) -> None:
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
        subscription=subscription["id"] if subscription else None,
        test_clock=clock,
        total_discount_amounts=[],
        total_pretax_credit_amounts=[],
        total_taxes=[],
        webhooks_delivered_at=None,
    )
    _recompute(invoice)
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


# state changes


def _hosted_url(invoice_id: str) -> str:
    req = current_request.get()
    root = req.url_root if req else "http://127.0.0.1:12111"
    return f"{root}/_sandbox/pay/invoice/{invoice_id}"


def finalize(store: Store, invoice: dict) -> dict:
    """draft → open: number, balance applied, hosted URL; a zero amount due is paid at once."""
    if invoice["status"] != "draft":
        raise errors.state_error("This invoice is already finalized, you can't re-finalize a non-draft invoice.")
    customer = store.get("customer", invoice["customer"])
    clock = clock_of(invoice)
    now = store.now(clock)
    _recompute(invoice)
    starting = customer["balance"] if customer else 0
    net = invoice["total"] + starting
    invoice["starting_balance"] = starting
    invoice["ending_balance"] = min(0, net)
    invoice["amount_due"] = invoice["amount_remaining"] = max(0, net)
    if customer is not None:
        if customer["balance"] != invoice["ending_balance"]:
            before = copy.deepcopy(customer)
            customer["balance"] = invoice["ending_balance"]
            emit(store, "customer.updated", customer, previous_attributes(before, customer), clock_id=clock)
        invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    invoice["effective_at"] = now
    invoice["automatically_finalizes_at"] = None
    invoice["hosted_invoice_url"] = _hosted_url(invoice["id"])
    invoice["invoice_pdf"] = invoice["hosted_invoice_url"] + "/pdf"
    emit(store, "invoice.finalized", invoice, clock_id=clock)
    if invoice["amount_due"] == 0:
        mark_paid(store, invoice)
    return invoice


def mark_paid(store: Store, invoice: dict, *, out_of_band: bool = False) -> dict:
    clock = clock_of(invoice)
    invoice["status"] = "paid"
    invoice["amount_paid"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    invoice["status_transitions"]["paid_at"] = store.now(clock)
    emit(store, "invoice.paid", invoice, clock_id=clock)
    if not out_of_band:
        emit(store, "invoice.payment_succeeded", invoice, clock_id=clock)
    _subscriptions().on_invoice_paid(store, invoice)
    return invoice


def void(store: Store, invoice: dict) -> dict:
    if invoice["status"] not in ("open", "uncollectible"):
        raise errors.state_error(f"You can only void open or uncollectible invoices, not {invoice['status']} ones.")
    before = copy.deepcopy(invoice)
    invoice["status"] = "void"
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    invoice["status_transitions"]["voided_at"] = store.now(clock_of(invoice))
    emit(store, "invoice.voided", invoice, previous_attributes(before, invoice), clock_id=clock_of(invoice))
    return invoice


def mark_uncollectible(store: Store, invoice: dict) -> dict:
    if invoice["status"] != "open":
        raise errors.state_error(f"You can only mark open invoices uncollectible, not {invoice['status']} ones.")
    before = copy.deepcopy(invoice)
    invoice["status"] = "uncollectible"
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    invoice["status_transitions"]["marked_uncollectible_at"] = store.now(clock_of(invoice))
    emit(
        store, "invoice.marked_uncollectible", invoice, previous_attributes(before, invoice), clock_id=clock_of(invoice)
    )
    return invoice


# paying


def _subscriptions():
    return importlib.import_module("sandbox.billing.subscriptions")


def payment_method_for(store: Store, invoice: dict) -> str | None:
    """The invoice's, else its subscription's, else the customer's invoice default payment method."""
    if invoice["default_payment_method"]:
        return invoice["default_payment_method"]
    if invoice["subscription"]:
        sub = store.get("subscription", invoice["subscription"])
        if sub and sub["default_payment_method"]:
            return sub["default_payment_method"]
    customer = store.get("customer", invoice["customer"])
    return customer["invoice_settings"]["default_payment_method"] if customer else None


def _shim_pay(store: Store, *, payment_method_id: str, off_session: bool, **_ignored) -> dict:
    """Stand-in for ``sandbox.payments.pay`` (not stored): a payment intent's status and error."""
    pm = store.get("payment_method", payment_method_id)
    outcome = cards.charge_outcome(store, pm, off_session=off_session)
    error = None
    if outcome.status == "declined":
        d = outcome.decline
        error = {"code": d.code, "decline_code": d.decline_code, "message": d.message, "type": "card_error"}
    status = {"succeeded": "succeeded", "declined": "requires_payment_method"}.get(outcome.status, "requires_action")
    return {
        "id": store.new_id("pi"),
        "object": "payment_intent",
        "status": status,
        "last_payment_error": error,
        "latest_charge": store.new_id("ch"),
    }


def _charge(store: Store, invoice: dict, pm_id: str, off_session: bool) -> dict:
    kwargs = {
        "customer_id": invoice["customer"],
        "payment_method_id": pm_id,
        "amount": invoice["amount_remaining"],
        "currency": invoice["currency"],
        "description": {
            "subscription_create": "Subscription creation",
            "subscription_update": "Subscription update",
        }.get(invoice["billing_reason"], "Invoice " + (invoice["number"] or "")),
        "metadata": {},
        "invoice_id": invoice["id"],
        "off_session": off_session,
        "clock_id": clock_of(invoice),
    }
    if payments is not None:
        return payments.pay(store, **kwargs)
    return _shim_pay(store, **kwargs)


def _record_payment(store: Store, invoice: dict, intent: dict) -> None:
    store.meta_for(invoice["id"])["payment_intent"] = intent["id"]
    payment = objects.build(
        "invoice_payment",
        id=store.new_id("inpay"),
        amount_paid=invoice["amount_remaining"] if intent["status"] == "succeeded" else None,
        amount_requested=invoice["amount_remaining"],
        created=store.now(clock_of(invoice)),
        currency=invoice["currency"],
        invoice=invoice["id"],
        is_default=True,
        livemode=False,
        payment={"type": "payment_intent", "payment_intent": intent["id"]},
        status="paid" if intent["status"] == "succeeded" else "open",
        status_transitions={
            "canceled_at": None,
            "paid_at": store.now(clock_of(invoice)) if intent["status"] == "succeeded" else None,
        },
    )
    for other in store.all("invoice_payment"):
        if other["invoice"] == invoice["id"] and other["is_default"]:
            other["is_default"] = False
            if other["status"] == "open":
                other["status"] = "canceled"
                other["status_transitions"]["canceled_at"] = payment["created"]
    store.insert(payment)


def attempt(
    store: Store,
    invoice: dict,
    *,
    payment_method: str | None = None,
    off_session: bool = True,
    retries: bool = True,
) -> dict | None:
    """Charge an open invoice; returns the failure (``{"code", "decline_code", "message"}``) or None.

    A failure emits ``invoice.payment_failed``; with ``retries`` the next attempt is scheduled per
    :func:`settings` and, once they are used up, the subscription ends (:func:`on_invoice_failed`).
    """
    clock = clock_of(invoice)
    before = copy.deepcopy(invoice)
    pm_id = payment_method or payment_method_for(store, invoice)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    failure = None
    if pm_id is None:
        failure = {
            "code": "invoice_no_customer_payment_method",
            "decline_code": None,
            "message": "This customer has no attached payment source or default payment method.",
        }
    else:
        intent = _charge(store, invoice, pm_id, off_session)
        _record_payment(store, invoice, intent)
        if intent["status"] == "succeeded":
            mark_paid(store, invoice)
            return None
        if intent["status"] == "requires_action":
            invoice["next_payment_attempt"] = None
            emit(store, "invoice.payment_action_required", invoice, clock_id=clock)
            return {
                "code": "authentication_required",
                "decline_code": "authentication_required",
                "message": "This payment requires authentication (3-D Secure).",
                "requires_action": True,
                "payment_intent": intent,
            }
        error = intent.get("last_payment_error") or {}
        failure = {
            "code": error.get("code") or "card_declined",
            "decline_code": error.get("decline_code"),
            "message": error.get("message") or "Your card was declined.",
            "payment_intent": intent,
        }
    final = False
    if retries and invoice["billing_reason"] != "subscription_create" and invoice["auto_advance"]:
        schedule = settings(store)["retry_days"]
        n = invoice["attempt_count"]
        if n <= len(schedule):
            invoice["next_payment_attempt"] = store.now(clock) + int(schedule[n - 1] * periods.DAY)
        else:
            invoice["next_payment_attempt"] = None
            final = True
    else:
        invoice["next_payment_attempt"] = None
    emit(store, "invoice.payment_failed", invoice, previous_attributes(before, invoice), clock_id=clock)
    _subscriptions().on_invoice_failed(store, invoice, final)
    return failure


def failure_error(failure: dict) -> errors.StripeError:
    extra = {}
    if failure.get("payment_intent"):
        extra["payment_intent"] = failure["payment_intent"]
    if failure["code"] == "invoice_no_customer_payment_method":
        return errors.StripeError(400, failure["message"], code=failure["code"])
    return errors.card_error(failure["message"], failure["code"], failure.get("decline_code"), **extra)


def _on_payment_intent_succeeded(store: Store, intent: dict) -> None:
    """A payment intent that needed 3-D Secure succeeded later: its invoice is paid."""
    for invoice in store.all("invoice"):
        if store.meta.get(invoice["id"], {}).get("payment_intent") == intent["id"] and invoice["status"] == "open":
            for payment in store.all("invoice_payment"):
                if payment["invoice"] == invoice["id"] and payment["payment"].get("payment_intent") == intent["id"]:
                    payment["status"] = "paid"
                    payment["amount_paid"] = invoice["amount_remaining"]
                    payment["status_transitions"]["paid_at"] = store.now(clock_of(invoice))
            mark_paid(store, invoice)


if payments is not None and _on_payment_intent_succeeded not in getattr(payments, "payment_succeeded_hooks", []):
    payments.payment_succeeded_hooks.append(_on_payment_intent_succeeded)


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
        price = store.get("price", params["price"])
        if price is None:
            raise errors.resource_missing("price", params["price"], "price")
    if params.get("_price") is not None:
        pass
    elif price is not None:
        quantity = params.get("quantity") or 1
        amount = _subscriptions().amount_for(price, quantity)
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
    if subscription_id and store.get("subscription", subscription_id) is None:
        raise errors.resource_missing("subscription", subscription_id, "subscription")
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
        _recompute(invoice)
        emit(store, "invoice.updated", invoice, clock_id=clock)
    return item


def get_invoice_item(store: Store, item_id: str, param: str = "id") -> dict:
    item = store.get("invoiceitem", item_id)
    if item is None:
        raise errors.resource_missing("invoiceitem", item_id, param)
    return item


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
        subscription = store.get("subscription", params["subscription"])
        if subscription is None:
            raise errors.resource_missing("subscription", params["subscription"], "subscription")
    pm = params.get("default_payment_method")
    if pm:
        pm = payment_methods.payment_method_for_customer(store, pm, customer, "default_payment_method")["id"]
    specs = []
    if params.get("pending_invoice_items_behavior") == "include":
        specs = [
            spec_of_invoice_item(store, item)
            for item in pending_items(store, customer["id"], subscription["id"] if subscription else None)
        ]
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
    finalize(store, invoice)
    if invoice["status"] == "open" and invoice["auto_advance"]:
        # Stripe attempts an auto-advancing invoice about an hour after finalization; the sandbox at once.
        attempt(store, invoice, off_session=True)
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
            and (not params.get("subscription") or invoice["subscription"] == params["subscription"])
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
    payment = req.store.get("invoice_payment", payment_id)
    if payment is None:
        raise errors.resource_missing("invoice_payment", payment_id)
    return payment


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
            _recompute(invoice)
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


# the hosted invoice page


@route("GET", "/_sandbox/pay/invoice/<invoice_id>", auth=False)
def hosted_page(req: ApiRequest, invoice_id: str) -> Response:
    invoice = req.store.get("invoice", invoice_id)
    if invoice is None:
        return Response("No such invoice", 404, content_type="text/plain")
    lines = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td><td>{line['amount'] / 100:.2f}</td></tr>"
        for line in invoice["lines"]["data"]
    )
    form = ""
    if invoice["status"] == "open":
        form = (
            f'<form method="post" action="/_sandbox/pay/invoice/{invoice_id}">'
            '<label>Test card <input name="payment_method" value="pm_card_visa"></label>'
            '<button type="submit">Pay</button></form>'
        )
    body = (
        f"<!doctype html><title>Invoice {html.escape(invoice['number'] or invoice_id)}</title>"
        f"<h1>Invoice {html.escape(invoice['number'] or invoice_id)}</h1>"
        f"<p>Status: <b id='status'>{invoice['status']}</b></p><table>{lines}</table>"
        f"<p>Amount due: {invoice['amount_due'] / 100:.2f} {invoice['currency'].upper()}</p>{form}"
    )
    return Response(body, 200, content_type="text/html; charset=utf-8")


@route("POST", "/_sandbox/pay/invoice/<invoice_id>", auth=False)
def hosted_page_pay(req: ApiRequest, invoice_id: str) -> Response:
    store = req.store
    invoice = store.get("invoice", invoice_id)
    if invoice is None:
        return Response("No such invoice", 404, content_type="text/plain")
    message = "Paid."
    if invoice["status"] == "open":
        customer = store.get("customer", invoice["customer"])
        try:
            pm = payment_methods.payment_method_for_customer(
                store, req.params.get("payment_method") or "pm_card_visa", customer, "payment_method"
            )
            failure = attempt(store, invoice, payment_method=pm["id"], off_session=False)
        except errors.StripeError as exc:
            failure = {"message": exc.message}
        if failure is not None:
            message = "Payment failed: " + failure["message"]
    return Response(
        f"<!doctype html><p id='result'>{html.escape(message)}</p>"
        f"<p><a href='/_sandbox/pay/invoice/{invoice_id}'>Back to the invoice</a></p>",
        200,
        content_type="text/html; charset=utf-8",
    )
