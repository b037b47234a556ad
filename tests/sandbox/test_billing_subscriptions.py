"""Subscriptions: creation per payment_behavior, trials, prorations (checked by hand), previews, cancel."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import stripe

from tests.sandbox.billing_helpers import (
    DAY,
    HOUR,
    T0,
    advance,
    clock_customer,
    event_types,
    invoices_of,
    price,
    proration,
    ts,
)

FIXTURES = json.loads((Path(__file__).resolve().parents[2] / "sandbox" / "core" / "fixtures3.json").read_text())[
    "resources"
]


def test_create_pays_the_first_invoice_and_has_the_fixture_shape(stripe_client):
    _, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": pro.id, "quantity": 2}], "metadata": {"a": "b"}}
    )
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0, ts(2026, 2, 1))
    assert (item.quantity, item.price.id, item.plan.amount) == (2, pro.id, 1500)
    assert set(sub.to_dict()) == set(FIXTURES["subscription"])
    assert set(item.to_dict()) == set(FIXTURES["subscription_item"])
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    # Stripe's example invoice still has the top-level `subscription` the current API dropped; the sandbox has not.
    assert set(invoice.to_dict()) == set(FIXTURES["invoice"]) - {"subscription"}
    assert invoice.parent.subscription_details.subscription == sub.id
    assert set(invoice.lines.data[0].to_dict()) == set(FIXTURES["line_item"])
    assert (invoice.status, invoice.billing_reason, invoice.amount_due, invoice.amount_paid) == (
        "paid",
        "subscription_create",
        3000,
        3000,
    )
    assert invoice.amount_remaining == 0 and invoice.status_transitions.paid_at == T0
    assert invoice.lines.data[0].period.end == ts(2026, 2, 1)
    assert invoice.hosted_invoice_url.endswith(f"/_sandbox/pay/invoice/{invoice.id}")
    assert event_types(stripe_client, "customer.subscription") == [
        "customer.subscription.created",
        "customer.subscription.updated",
    ]
    assert event_types(stripe_client, "invoice.") == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    # Events of clock customers carry the clock's time.
    assert {e.created for e in stripe_client.v1.events.list(params={"type": "invoice.*"}).data} == {T0}
    payments = stripe_client.v1.invoice_payments.list(params={"invoice": invoice.id}).data
    assert [p.status for p in payments] == ["paid"]


def test_payment_behaviors(stripe_client, sandbox):
    _, customer = clock_customer(stripe_client, payment_method="pm_card_chargeCustomerFail")
    pro = price(stripe_client, 1500)
    with pytest.raises(stripe.CardError) as refused:
        stripe_client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": pro.id}], "payment_behavior": "error_if_incomplete"}
        )
    assert refused.value.code == "card_declined"
    assert stripe_client.v1.subscriptions.list(params={"customer": customer.id, "status": "all"}).data == []

    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    assert sub.status == "incomplete"
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("open", 1, None)
    # Paying the open invoice with a good card activates the subscription.
    paid = stripe_client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "paid"
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"

    waiting = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": pro.id}], "payment_behavior": "default_incomplete"}
    )
    assert waiting.status == "incomplete"
    assert stripe_client.v1.invoices.retrieve(waiting.latest_invoice).attempt_count == 0


def test_incomplete_subscription_expires_after_23_hours(stripe_client):
    clock, customer = clock_customer(stripe_client, payment_method="pm_card_chargeCustomerFail")
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    advance(stripe_client, clock, T0 + 23 * HOUR + 1)
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "incomplete_expired"
    assert stripe_client.v1.invoices.retrieve(sub.latest_invoice).status == "void"


def test_upgrade_mid_period_amount_checked_by_hand_and_preview_equals_invoice(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro, team = price(stripe_client, 1500), price(stripe_client, 4500, name="Team")
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    change_at = T0 + 10 * DAY + 3 * HOUR
    advance(stripe_client, clock, change_at)
    # January has 31 days = 2 678 400 s; 10 days 3 hours used, 1 803 600 s remain.
    # Credit: 1500 * 1803600 / 2678400 = 1010.08 -> -1010; charge: 4500 * 1803600 / 2678400 = 3030.24 -> 3030.
    assert proration(1500, 1803600, 2678400) == 1010 and proration(4500, 1803600, 2678400) == 3030
    item_id = sub["items"].data[0].id
    details = {"items": [{"id": item_id, "price": team.id}], "proration_behavior": "always_invoice"}
    preview = stripe_client.v1.invoices.create_preview(
        params={"customer": customer.id, "subscription": sub.id, "subscription_details": details}
    )
    assert [line.amount for line in preview.lines.data] == [-1010, 3030]
    assert preview.total == preview.amount_due == 2020

    updated = stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item_id, "price": team.id}], "proration_behavior": "always_invoice"}
    )
    assert updated["items"].data[0].price.id == team.id
    invoice = stripe_client.v1.invoices.retrieve(updated.latest_invoice)
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == ("subscription_update", "paid", 2020)
    assert [line.amount for line in invoice.lines.data] == [line.amount for line in preview.lines.data]
    assert [line.description for line in invoice.lines.data] == [line.description for line in preview.lines.data]
    for line in invoice.lines.data:
        assert line.parent.invoice_item_details.proration is True
        assert (line.period.start, line.period.end) == (change_at, ts(2026, 2, 1))
    # The period is unchanged; the next renewal bills the new price.
    assert updated["items"].data[0].current_period_end == ts(2026, 2, 1)
    advance(stripe_client, clock, ts(2026, 2, 1) + 2 * HOUR)
    assert invoices_of(stripe_client, customer.id)[-1].amount_paid == 4500


def test_quantity_change_prorations_land_on_the_next_invoice_as_previewed(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    change_at = ts(2026, 1, 16, 12)  # 15.5 days into a 31-day month: 15.5 days remain
    advance(stripe_client, clock, change_at)
    remaining, length = ts(2026, 2, 1) - change_at, 31 * DAY
    assert remaining == 1339200
    item_id = sub["items"].data[0].id
    details = {"items": [{"id": item_id, "quantity": 3}], "proration_date": change_at}
    preview = stripe_client.v1.invoices.create_preview(params={"subscription": sub.id, "subscription_details": details})
    # Credit for 1 seat (-750), charge for 3 seats (+2250), then February for 3 seats (4500).
    expected = [-proration(1500, remaining, length), proration(4500, remaining, length), 4500]
    assert expected == [-750, 2250, 4500]
    assert [line.amount for line in preview.lines.data] == expected

    stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item_id, "quantity": 3}], "proration_date": change_at}
    )
    pending = stripe_client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data
    assert sorted(i.amount for i in pending) == [-750, 2250]
    assert all(i.proration for i in pending)
    advance(stripe_client, clock, ts(2026, 2, 1) + 2 * HOUR)
    renewal = invoices_of(stripe_client, customer.id)[-1]
    assert renewal.billing_reason == "subscription_cycle" and renewal.status == "paid"
    assert [line.amount for line in renewal.lines.data] == expected
    assert renewal.total == preview.total == 6000
    assert stripe_client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data == []


def test_proration_behavior_none_and_added_and_deleted_items(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro, addon = price(stripe_client, 1500), price(stripe_client, 300, name="Addon")
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    advance(stripe_client, clock, T0 + 10 * DAY)
    sub = stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"price": addon.id, "quantity": 2}], "proration_behavior": "none"}
    )
    assert len(sub["items"].data) == 2
    assert stripe_client.v1.invoice_items.list(params={"customer": customer.id}).data == []
    addon_item = next(i for i in sub["items"].data if i.price.id == addon.id)
    deleted = stripe_client.v1.subscription_items.delete(addon_item.id)
    assert deleted.deleted is True
    credits = stripe_client.v1.invoice_items.list(params={"customer": customer.id}).data
    remaining = ts(2026, 2, 1) - (T0 + 10 * DAY)
    assert [c.amount for c in credits] == [-proration(600, remaining, 31 * DAY)]
    listed = stripe_client.v1.subscription_items.list(params={"subscription": sub.id}).data
    assert [i.price.id for i in listed] == [pro.id]


def test_trial_then_first_charge(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": pro.id}], "trial_period_days": 14}
    )
    trial_end = T0 + 14 * DAY
    assert (sub.status, sub.trial_start, sub.trial_end) == ("trialing", T0, trial_end)
    first = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert (first.status, first.total) == ("paid", 0)
    advance(stripe_client, clock, trial_end - 3 * DAY + 1)
    assert "customer.subscription.trial_will_end" in event_types(stripe_client, "customer.subscription")
    advance(stripe_client, clock, trial_end + 2 * HOUR)
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "active"
    assert (sub["items"].data[0].current_period_start, sub["items"].data[0].current_period_end) == (
        trial_end,
        ts(2026, 2, 15),
    )
    invoice = invoices_of(stripe_client, customer.id)[-1]
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == ("subscription_cycle", "paid", 1500)


def test_trial_end_without_payment_method_goes_past_due(stripe_client):
    clock, customer = clock_customer(stripe_client, payment_method=None)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": pro.id}], "trial_end": T0 + 7 * DAY}
    )
    advance(stripe_client, clock, T0 + 7 * DAY + 2 * HOUR)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert invoices_of(stripe_client, customer.id)[-1].status == "open"


def test_trial_end_now_charges_immediately(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": pro.id}], "trial_period_days": 30}
    )
    advance(stripe_client, clock, T0 + 5 * DAY)
    sub = stripe_client.v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    assert (sub.status, sub.trial_end, sub.billing_cycle_anchor) == ("active", T0 + 5 * DAY, T0 + 5 * DAY)
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.amount_paid, invoice.billing_reason) == (1500, "subscription_update")


def test_cancel_at_period_end(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    sub = stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert (sub.cancel_at_period_end, sub.cancel_at, sub.status) == (True, ts(2026, 2, 1), "active")
    advance(stripe_client, clock, ts(2026, 2, 1) + DAY)
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert (sub.status, sub.ended_at) == ("canceled", ts(2026, 2, 1))
    assert [i.billing_reason for i in invoices_of(stripe_client, customer.id)] == ["subscription_create"]
    assert event_types(stripe_client, "customer.subscription")[-1] == "customer.subscription.deleted"
    assert stripe_client.v1.subscriptions.list(params={"customer": customer.id}).data == []
    assert [s.id for s in stripe_client.v1.subscriptions.list(params={"status": "canceled"}).data] == [sub.id]


def test_cancel_now_with_prorated_credit_invoiced(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 3100)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    advance(stripe_client, clock, T0 + 21 * DAY)
    canceled = stripe_client.v1.subscriptions.cancel(sub.id, params={"prorate": True, "invoice_now": True})
    assert canceled.status == "canceled"
    final = invoices_of(stripe_client, customer.id)[-1]
    # 10 of 31 days unused on a 31.00 price: a 10.00 credit, kept as customer balance.
    assert (final.total, final.amount_due, final.status) == (-1000, 0, "paid")
    assert stripe_client.v1.customers.retrieve(customer.id).balance == -1000


def test_list_filters(stripe_client):
    _, customer = clock_customer(stripe_client)
    pro, team = price(stripe_client, 1500), price(stripe_client, 4500)
    a = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    b = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": team.id}]})
    assert [s.id for s in stripe_client.v1.subscriptions.list(params={"price": team.id}).data] == [b.id]
    assert [s.id for s in stripe_client.v1.subscriptions.list(params={"customer": customer.id}).data] == [b.id, a.id]
    assert stripe_client.v1.subscriptions.list(params={"status": "past_due"}).data == []
    listed = stripe_client.v1.invoices.list(params={"subscription": a.id}).data
    assert [i.parent.subscription_details.subscription for i in listed] == [a.id]


def test_first_payment_needing_3ds_completes_the_subscription_after_approval(stripe_client, sandbox):
    _, customer = clock_customer(stripe_client, payment_method="pm_card_authenticationRequired")
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    assert sub.status == "incomplete"
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.status == "open"
    assert "invoice.payment_action_required" in event_types(stripe_client, "invoice.")
    (payment,) = stripe_client.v1.invoice_payments.list(params={"invoice": invoice.id}).data
    intent = stripe_client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    assert intent.status == "requires_action"
    # The customer approves on the hosted 3-D Secure page (an HTML form).
    approve = urllib.request.Request(f"{sandbox.base_url}/_sandbox/3ds/{intent.id}", data=b"action=complete")
    with urllib.request.urlopen(approve, timeout=10) as page:
        assert page.status == 200
    assert stripe_client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_switch_to_an_annual_price_resets_the_cycle(stripe_client):
    clock, customer = clock_customer(stripe_client)
    monthly, yearly = price(stripe_client, 3100), price(stripe_client, 30000, interval="year")
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": monthly.id}]})
    advance(stripe_client, clock, T0 + 21 * DAY)
    sub = stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": yearly.id}]}
    )
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0 + 21 * DAY, ts(2027, 1, 22))
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    # 10 of 31 days unused on 31.00: a 10.00 credit, then a full year.
    assert [line.amount for line in invoice.lines.data] == [-1000, 30000]
    assert (invoice.amount_paid, invoice.billing_reason) == (29000, "subscription_update")


def test_an_annual_price_during_a_trial_keeps_the_trial_and_charges_at_its_end(stripe_client):
    """Stripe anchors a trialing subscription at the trial's end and refuses an anchor before it: a new interval
    while trialing charges nothing now; the year starts, and is charged, when the trial ends."""
    clock, customer = clock_customer(stripe_client)
    monthly, yearly = price(stripe_client, 3100), price(stripe_client, 30000, interval="year")
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": monthly.id}], "trial_period_days": 14}
    )
    trial_end, first_invoice = T0 + 14 * DAY, sub.latest_invoice
    advance(stripe_client, clock, T0 + 3 * DAY)
    sub = stripe_client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": sub["items"].data[0].id, "price": yearly.id}], "proration_behavior": "always_invoice"},
    )
    item = sub["items"].data[0]
    assert (sub.status, sub.trial_end, sub.billing_cycle_anchor, sub.latest_invoice) == (
        "trialing",
        trial_end,
        trial_end,
        first_invoice,
    )
    assert (item.price.id, item.current_period_end) == (yearly.id, trial_end)
    advance(stripe_client, clock, trial_end + 2 * HOUR)
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    item = sub["items"].data[0]
    assert (sub.status, item.current_period_start, item.current_period_end) == ("active", trial_end, ts(2027, 1, 15))
    invoice = invoices_of(stripe_client, customer.id)[-1]
    assert (invoice.billing_reason, invoice.amount_paid) == ("subscription_cycle", 30000)


def test_future_billing_cycle_anchor_prorates_the_first_period(stripe_client):
    _, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 3100)
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": pro.id}], "billing_cycle_anchor": ts(2026, 1, 11)}
    )
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0, ts(2026, 1, 11))
    # 10 days of the 31-day period Dec 11 → Jan 11.
    assert stripe_client.v1.invoices.retrieve(sub.latest_invoice).amount_paid == 1000
