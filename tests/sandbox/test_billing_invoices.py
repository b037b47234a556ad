"""Invoices, invoice items and billing meters: manual invoices, states, usage billed at renewal."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.billing_helpers import HOUR, T0, advance, clock_customer, event_types, invoices_of, price, ts


def test_manual_invoice_lifecycle(stripe_client):
    _, customer = clock_customer(stripe_client)
    item = stripe_client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 2500, "currency": "usd", "description": "Setup fee"}
    )
    assert (item.invoice, item.amount, item.proration) == (None, 2500, False)
    one_off = stripe_client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 300, "product_data": {"name": "Seat"}}
    )
    stripe_client.v1.invoice_items.create(params={"customer": customer.id, "price": one_off.id, "quantity": 2})
    invoice = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include", "auto_advance": False}
    )
    assert (invoice.status, invoice.total, invoice.amount_due, invoice.billing_reason) == (
        "draft",
        3100,
        3100,
        "manual",
    )
    assert [line.amount for line in invoice.lines.data] == [2500, 600]
    lines = stripe_client.v1.invoices.line_items.list(invoice.id, params={"limit": 1})
    assert len(lines.data) == 1 and lines.has_more is True
    assert stripe_client.v1.invoice_items.retrieve(item.id).invoice == invoice.id
    finalized = stripe_client.v1.invoices.finalize_invoice(invoice.id)
    assert (finalized.status, finalized.number is not None) == ("open", True)
    assert finalized.status_transitions.finalized_at == T0
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoice_items.delete(item.id)
    paid = stripe_client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_mastercard"})
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 3100, 0)
    assert event_types(stripe_client, "invoice") == [
        "invoiceitem.created",
        "invoiceitem.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]


def test_void_uncollectible_and_declined_pay(stripe_client):
    _, customer = clock_customer(stripe_client)
    invoices = []
    for amount in (100, 200, 300):
        stripe_client.v1.invoice_items.create(params={"customer": customer.id, "amount": amount, "currency": "usd"})
        invoice = stripe_client.v1.invoices.create(
            params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
        )
        invoices.append(stripe_client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": False}))
    voided = stripe_client.v1.invoices.void_invoice(invoices[0].id)
    assert (voided.status, voided.status_transitions.voided_at) == ("void", T0)
    lost = stripe_client.v1.invoices.mark_uncollectible(invoices[1].id)
    assert lost.status == "uncollectible"
    with pytest.raises(stripe.CardError) as declined:
        stripe_client.v1.invoices.pay(invoices[2].id, params={"payment_method": "pm_card_chargeCustomerFail"})
    assert declined.value.code == "card_declined"
    still_open = stripe_client.v1.invoices.retrieve(invoices[2].id)
    assert (still_open.status, still_open.attempt_count) == ("open", 1)
    assert [i.id for i in stripe_client.v1.invoices.list(params={"status": "void"}).data] == [voided.id]
    assert {e.type for e in stripe_client.v1.events.list(params={"type": "invoice.*"}).data} >= {
        "invoice.voided",
        "invoice.marked_uncollectible",
        "invoice.payment_failed",
    }
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.void_invoice(voided.id)


def test_invoice_item_update_delete_while_pending(stripe_client):
    _, customer = clock_customer(stripe_client)
    item = stripe_client.v1.invoice_items.create(params={"customer": customer.id, "amount": 100, "currency": "usd"})
    updated = stripe_client.v1.invoice_items.update(item.id, params={"amount": 150, "metadata": {"k": "v"}})
    assert (updated.amount, updated.metadata["k"]) == (150, "v")
    assert stripe_client.v1.invoice_items.delete(item.id).deleted is True
    assert "invoiceitem.deleted" in event_types(stripe_client, "invoiceitem")


def test_customer_credit_balance_applies_to_the_next_invoice(stripe_client):
    _, customer = clock_customer(stripe_client)
    stripe_client.v1.customers.update(customer.id, params={"balance": -500})
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.total, invoice.starting_balance, invoice.amount_paid, invoice.ending_balance) == (
        1500,
        -500,
        1000,
        0,
    )
    assert stripe_client.v1.customers.retrieve(customer.id).balance == 0


def test_meter_usage_and_pending_item_billed_on_the_renewal_invoice(stripe_client):
    meter = stripe_client.v1.billing.meters.create(
        params={
            "display_name": "API calls",
            "event_name": "api_call",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )
    assert (meter.status, meter.default_aggregation.formula) == ("active", "sum")
    assert [m.id for m in stripe_client.v1.billing.meters.list().data] == [meter.id]
    clock, customer = clock_customer(stripe_client)
    seats = price(stripe_client, 1500)
    calls = price(stripe_client, 5, name="API calls", usage_type="metered", meter=meter.id)
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seats.id}, {"price": calls.id}]}
    )
    assert stripe_client.v1.invoices.retrieve(sub.latest_invoice).amount_paid == 1500
    advance(stripe_client, clock, ts(2026, 1, 10))
    for value, identifier in ((10, "evt-1"), (32, "evt-2")):
        stripe_client.v1.billing.meter_events.create(
            params={
                "event_name": "api_call",
                "payload": {"stripe_customer_id": customer.id, "value": str(value)},
                "identifier": identifier,
            }
        )
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.billing.meter_events.create(
            params={
                "event_name": "api_call",
                "payload": {"stripe_customer_id": customer.id, "value": "1000"},
                "identifier": "evt-1",
            }
        )
    summaries = stripe_client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": customer.id, "start_time": T0, "end_time": ts(2026, 2, 1)}
    )
    assert [s.aggregated_value for s in summaries.data] == [42]
    stripe_client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 700, "currency": "usd", "description": "Extra support"}
    )
    advance(stripe_client, clock, ts(2026, 2, 1) + 2 * HOUR)
    renewal = invoices_of(stripe_client, customer.id)[-1]
    by_description = {line.description: line for line in renewal.lines.data}
    assert by_description["Extra support"].amount == 700
    usage = next(line for line in renewal.lines.data if (line.pricing.price_details or {}).get("price") == calls.id)
    assert (usage.quantity, usage.amount) == (42, 210)
    assert (usage.period.start, usage.period.end) == (T0, ts(2026, 2, 1))
    assert (renewal.total, renewal.amount_paid, renewal.status) == (1500 + 210 + 700, 2410, "paid")
    # Usage of the next period starts from zero.
    advance(stripe_client, clock, ts(2026, 3, 1) + 2 * HOUR)
    assert invoices_of(stripe_client, customer.id)[-1].total == 1500
    deactivated = stripe_client.v1.billing.meters.deactivate(meter.id)
    assert deactivated.status == "inactive"
    assert "billing.meter.created" in event_types(stripe_client, "billing.meter")


def test_hosted_invoice_page_pays(stripe_client, sandbox):
    import urllib.parse
    import urllib.request

    _, customer = clock_customer(stripe_client, payment_method=None)
    stripe_client.v1.invoice_items.create(params={"customer": customer.id, "amount": 900, "currency": "usd"})
    invoice = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    invoice = stripe_client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": False})
    with urllib.request.urlopen(invoice.hosted_invoice_url, timeout=10) as page:
        assert "9.00" in page.read().decode()
    data = urllib.parse.urlencode({"payment_method": "pm_card_visa"}).encode()
    with urllib.request.urlopen(urllib.request.Request(invoice.hosted_invoice_url, data=data), timeout=10) as page:
        assert "Paid." in page.read().decode()
    assert stripe_client.v1.invoices.retrieve(invoice.id).status == "paid"
