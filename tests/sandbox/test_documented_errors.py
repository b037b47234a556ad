"""Stripe's documented errors the sandbox answers: a card expiry in the past, amounts under the minimum charge."""

from __future__ import annotations

import datetime

import pytest
import stripe

from tests.sandbox.billing_helpers import clock_customer, invoices_of

THIS_YEAR = datetime.datetime.now(datetime.UTC).year


def _card(client, **card):
    return client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "cvc": "123", **card}}
    )


def test_a_card_expiring_in_a_past_year_is_refused_with_invalid_expiry_year(stripe_client):
    with pytest.raises(stripe.CardError) as caught:
        _card(stripe_client, exp_year=THIS_YEAR - 1)
    assert caught.value.http_status == 402
    error = caught.value.error
    assert (error.type, error.code, error.param) == ("card_error", "invalid_expiry_year", "exp_year")
    assert stripe_client.v1.payment_methods.list(params={"type": "card"}).data == []


def test_a_two_digit_year_means_this_century(stripe_client):
    pm = _card(stripe_client, exp_year=(THIS_YEAR + 2) % 100)
    assert (pm.card.exp_month, pm.card.exp_year) == (12, THIS_YEAR + 2)
    with pytest.raises(stripe.CardError) as caught:
        _card(stripe_client, exp_year=(THIS_YEAR - 1) % 100)
    assert caught.value.error.code == "invalid_expiry_year"


def test_an_expiry_month_that_is_no_month_is_refused(stripe_client):
    with pytest.raises(stripe.CardError) as caught:
        _card(stripe_client, exp_month=13, exp_year=THIS_YEAR + 1)
    assert (caught.value.error.code, caught.value.error.param) == ("invalid_expiry_month", "exp_month")


def test_updating_a_card_to_a_past_year_is_refused_and_changes_nothing(stripe_client):
    pm = _card(stripe_client, exp_year=THIS_YEAR + 1)
    with pytest.raises(stripe.CardError) as caught:
        stripe_client.v1.payment_methods.update(pm.id, params={"card": {"exp_year": THIS_YEAR - 3}})
    assert caught.value.error.code == "invalid_expiry_year"
    assert stripe_client.v1.payment_methods.retrieve(pm.id).card.exp_year == THIS_YEAR + 1


def test_hosted_checkout_with_a_past_year_shows_the_error_and_stays_open(stripe_client, sandbox):
    product = stripe_client.v1.products.create(params={"name": "Pro"})
    monthly = stripe_client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 1500, "recurring": {"interval": "month"}, "product": product.id}
    )
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": monthly.id, "quantity": 1}],
            "success_url": "https://shop.example/ok",
            "customer_email": "late@example.com",
        }
    )
    reply = sandbox.request(
        "POST",
        f"/_sandbox/checkout/{session.id}/complete",
        {"card": "4242424242424242", "exp_month": "1", "exp_year": str(THIS_YEAR - 1), "cvc": "123"},
        api_key=None,
    )
    assert (reply.body["status"], reply.body["error"]) == ("open", "Your card's expiration year is invalid.")
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert stripe_client.v1.subscriptions.list().data == []


@pytest.mark.parametrize(("currency", "amount", "message"), [("usd", 49, "$0.50 usd"), ("gbp", 29, "£0.30 gbp")])
def test_a_payment_under_the_minimum_charge_is_refused(stripe_client, currency, amount, message):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.payment_intents.create(
            params={"amount": amount, "currency": currency, "payment_method": "pm_card_visa", "confirm": True}
        )
    error = caught.value.error
    assert (caught.value.http_status, error.code, error.param) == (400, "amount_too_small", "amount")
    assert error.message == f"Amount must be at least {message}"
    assert stripe_client.v1.payment_intents.list().data == []
    assert stripe_client.v1.charges.list().data == []


def test_the_minimum_itself_is_charged(stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 30, "currency": "gbp", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert (pi.status, pi.amount_received) == ("succeeded", 30)


def test_lowering_an_intent_under_the_minimum_is_refused(stripe_client):
    pi = stripe_client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.payment_intents.update(pi.id, params={"amount": 10})
    assert caught.value.error.code == "amount_too_small"
    assert stripe_client.v1.payment_intents.retrieve(pi.id).amount == 500


def test_an_invoice_under_the_minimum_is_paid_by_a_debit_the_next_invoice_collects(stripe_client):
    _, customer = clock_customer(stripe_client)
    stripe_client.v1.invoice_items.create(params={"customer": customer.id, "amount": 30, "currency": "usd"})
    small = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    small = stripe_client.v1.invoices.finalize_invoice(small.id)
    # Stripe: nothing is charged; the invoice is paid and the 30 cents are owed on the customer's balance.
    assert (small.status, small.total, small.amount_due, small.amount_paid, small.ending_balance) == (
        "paid",
        30,
        0,
        0,
        30,
    )
    assert stripe_client.v1.customers.retrieve(customer.id).balance == 30
    assert stripe_client.v1.payment_intents.list(params={"customer": customer.id}).data == []

    stripe_client.v1.invoice_items.create(params={"customer": customer.id, "amount": 1000, "currency": "usd"})
    nxt = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    stripe_client.v1.invoices.finalize_invoice(nxt.id)
    nxt = stripe_client.v1.invoices.pay(nxt.id)
    assert (nxt.status, nxt.total, nxt.starting_balance, nxt.amount_due, nxt.amount_paid) == (
        "paid",
        1000,
        30,
        1030,
        1030,
    )
    assert stripe_client.v1.customers.retrieve(customer.id).balance == 0
    assert sum(i.amount_paid for i in invoices_of(stripe_client, customer.id)) == 1030
