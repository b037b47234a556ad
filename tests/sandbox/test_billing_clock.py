"""Test clocks and the billing engine: a year of renewals, failing renewals and retries, annual prices."""

from __future__ import annotations

import pytest

from tests.sandbox.billing_helpers import (
    DAY,
    HOUR,
    T0,
    advance,
    clock_customer,
    event_types,
    invoices_of,
    price,
    ts,
)


def test_clock_crud_and_events(stripe_client):
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "name": "year"})
    assert (clock.status, clock.frozen_time, clock.name) == ("ready", T0, "year")
    assert [c.id for c in stripe_client.v1.test_helpers.test_clocks.list().data] == [clock.id]
    customer = stripe_client.v1.customers.create(params={"test_clock": clock.id})
    assert customer.created == T0
    advanced = advance(stripe_client, clock, T0 + DAY)
    assert (advanced.status, advanced.frozen_time) == ("ready", T0 + DAY)
    assert event_types(stripe_client, "test_helpers") == [
        "test_helpers.test_clock.created",
        "test_helpers.test_clock.advancing",
        "test_helpers.test_clock.ready",
    ]
    assert stripe_client.v1.test_helpers.test_clocks.delete(clock.id).deleted is True
    assert stripe_client.v1.customers.list(params={"test_clock": clock.id}).data == []


def test_a_year_of_monthly_renewals(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    advance(stripe_client, clock, ts(2027, 1, 1) + 2 * HOUR)
    invoices = invoices_of(stripe_client, customer.id)
    assert [i.billing_reason for i in invoices] == ["subscription_create"] + ["subscription_cycle"] * 12
    assert all(i.status == "paid" and i.amount_paid == 1500 for i in invoices)
    months = [ts(2026, m, 1) for m in range(1, 13)] + [ts(2027, 1, 1), ts(2027, 2, 1)]
    for n, invoice in enumerate(invoices):
        line = invoice.lines.data[0]
        assert (line.period.start, line.period.end) == (months[n], months[n + 1])
        assert invoice.created == months[n]
        # Renewals are finalized (and charged) an hour after they are drafted, as on Stripe.
        assert invoice.status_transitions.finalized_at == months[n] + (HOUR if n else 0)
    numbers = [i.number for i in invoices]
    assert len(set(numbers)) == 13 and numbers[0].endswith("-0001") and numbers[-1].endswith("-0013")
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "active"
    assert sub["items"].data[0].current_period_end == ts(2027, 2, 1)
    upcoming = stripe_client.v1.events.list(params={"type": "invoice.upcoming", "limit": 100}).data
    assert len(upcoming) == 12
    assert upcoming[0].created == ts(2026, 12, 29) and upcoming[0].data.object.amount_due == 1500


def test_anchor_on_the_31st_clamps_to_short_months(stripe_client):
    clock, customer = clock_customer(stripe_client, frozen_time=ts(2026, 1, 31))
    pro = price(stripe_client, 1000)
    stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    advance(stripe_client, clock, ts(2026, 4, 1))
    ends = [i.lines.data[0].period.end for i in invoices_of(stripe_client, customer.id)]
    assert ends == [ts(2026, 2, 28), ts(2026, 3, 31), ts(2026, 4, 30)]


def test_annual_price_renews_after_a_year(stripe_client):
    clock, customer = clock_customer(stripe_client)
    yearly = price(stripe_client, 15000, interval="year")
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": yearly.id}]})
    assert sub["items"].data[0].current_period_end == ts(2027, 1, 1)
    advance(stripe_client, clock, ts(2026, 12, 31))
    assert len(invoices_of(stripe_client, customer.id)) == 1
    advance(stripe_client, clock, ts(2027, 1, 1) + 2 * HOUR)
    renewal = invoices_of(stripe_client, customer.id)[-1]
    assert (renewal.billing_reason, renewal.amount_paid) == ("subscription_cycle", 15000)
    assert (renewal.lines.data[0].period.start, renewal.lines.data[0].period.end) == (ts(2027, 1, 1), ts(2028, 1, 1))


def _failing_subscription(stripe_client):
    clock, customer = clock_customer(stripe_client)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    # The card on file starts failing (0341 attaches fine, then declines every charge).
    stripe_client.v1.subscriptions.update(sub.id, params={"default_payment_method": "pm_card_chargeCustomerFail"})
    return clock, customer, sub


def test_failing_renewal_retries_then_cancels(stripe_client):
    clock, customer, sub = _failing_subscription(stripe_client)
    renewal_at = ts(2026, 2, 1) + HOUR
    advance(stripe_client, clock, renewal_at + 1)
    invoice = invoices_of(stripe_client, customer.id)[-1]
    assert (invoice.status, invoice.attempt_count) == ("open", 1)
    assert invoice.next_payment_attempt == renewal_at + 3 * DAY
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    # Retries at +3 days, then +5, then +7: the fourth failure ends the subscription.
    advance(stripe_client, clock, renewal_at + 8 * DAY + 1)
    invoice = stripe_client.v1.invoices.retrieve(invoice.id)
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (3, renewal_at + 15 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    advance(stripe_client, clock, renewal_at + 15 * DAY + 1)
    invoice = stripe_client.v1.invoices.retrieve(invoice.id)
    assert (invoice.attempt_count, invoice.next_payment_attempt, invoice.status) == (4, None, "open")
    sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert (sub.status, sub.cancellation_details.reason) == ("canceled", "payment_failed")
    assert len(stripe_client.v1.events.list(params={"type": "invoice.payment_failed"}).data) == 4
    assert event_types(stripe_client, "customer.subscription")[-1] == "customer.subscription.deleted"
    # Nothing more happens to a canceled subscription.
    advance(stripe_client, clock, ts(2026, 4, 1))
    assert len(invoices_of(stripe_client, customer.id)) == 2


def test_failing_renewal_ends_unpaid_when_configured_and_recovers_when_paid(stripe_client, sandbox):
    reply = sandbox.request(
        "POST", "/_sandbox/billing/settings", {"retry_days": "1,2", "after_final_failure": "unpaid"}, api_key=None
    )
    assert reply.body["retry_days"] == [1, 2]
    clock, customer, sub = _failing_subscription(stripe_client)
    advance(stripe_client, clock, ts(2026, 2, 5))
    invoice = invoices_of(stripe_client, customer.id)[-1]
    assert invoice.attempt_count == 3
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "unpaid"
    paid = stripe_client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "paid"
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"


@pytest.mark.parametrize("behavior", ["cancel", "create_invoice"])
def test_trial_without_payment_method_end_behavior(stripe_client, behavior):
    clock, customer = clock_customer(stripe_client, payment_method=None)
    pro = price(stripe_client, 1500)
    sub = stripe_client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": pro.id}],
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": behavior}},
        }
    )
    advance(stripe_client, clock, T0 + 8 * DAY)
    status = stripe_client.v1.subscriptions.retrieve(sub.id).status
    assert status == ("canceled" if behavior == "cancel" else "past_due")


def test_sandbox_advance_moves_time_for_customers_without_a_clock(stripe_client, sandbox):
    customer = stripe_client.v1.customers.create(
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    pro = price(stripe_client, 700, interval="day")
    sub = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    reply = sandbox.request("POST", "/_sandbox/advance", {"seconds": str(2 * DAY + 2 * HOUR)}, api_key=None)
    assert reply.status == 200 and reply.body["actions"] >= 4
    invoices = invoices_of(stripe_client, customer.id)
    assert [i.status for i in invoices] == ["paid", "paid", "paid"]
    assert stripe_client.v1.subscriptions.retrieve(sub.id)["items"].data[0].current_period_start == (
        invoices[-1].lines.data[0].period.start
    )
