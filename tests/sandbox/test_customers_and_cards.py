"""Customers, payment methods and the test-card table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stripe

FIXTURES = json.loads((Path(__file__).resolve().parents[2] / "sandbox" / "core" / "fixtures3.json").read_text())[
    "resources"
]


def test_customer_crud(stripe_client):
    customer = stripe_client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"a": "1"}}
    )
    assert set(customer.to_dict()) == set(FIXTURES["customer"])
    assert customer.id.startswith("cus_") and len(customer.id) >= 18
    assert (customer.balance, customer.test_clock, customer.invoice_settings.default_payment_method) == (0, None, None)
    updated = stripe_client.v1.customers.update(customer.id, params={"balance": -500, "metadata": {"b": "2"}})
    assert updated.balance == -500
    assert updated.metadata.to_dict() == {"a": "1", "b": "2"}
    deleted = stripe_client.v1.customers.delete(customer.id)
    assert (deleted.id, deleted.deleted) == (customer.id, True)
    assert stripe_client.v1.customers.retrieve(customer.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.update(customer.id, params={"name": "Ghost"})


def test_customer_list_by_email(stripe_client):
    ada = stripe_client.v1.customers.create(params={"email": "ada@example.com"})
    stripe_client.v1.customers.create(params={"email": "bob@example.com"})
    assert [c.id for c in stripe_client.v1.customers.list(params={"email": "ada@example.com"}).data] == [ada.id]


def test_customer_test_clock_must_exist(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.customers.create(params={"test_clock": "clock_missing"})
    assert (info.value.code, info.value.param) == ("resource_missing", "test_clock")


def test_test_payment_method_as_default_is_copied_and_attached(stripe_client):
    customer = stripe_client.v1.customers.create(
        params={"email": "pay@example.com", "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    pm_id = customer.invoice_settings.default_payment_method
    assert pm_id.startswith("pm_") and pm_id != "pm_card_visa"
    pm = stripe_client.v1.payment_methods.retrieve(pm_id)
    assert set(pm.to_dict()) == set(FIXTURES["payment_method"])
    assert (pm.customer, pm.card.brand, pm.card.last4, pm.card.funding, pm.card.country) == (
        customer.id,
        "visa",
        "4242",
        "credit",
        "US",
    )


def test_default_payment_method_must_be_attached(stripe_client):
    customer = stripe_client.v1.customers.create(params={})
    loose = stripe_client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.customers.update(
            customer.id, params={"invoice_settings": {"default_payment_method": loose.id}}
        )
    assert info.value.param == "invoice_settings[default_payment_method]"


def test_attach_list_and_detach(stripe_client):
    customer = stripe_client.v1.customers.create(params={})
    visa = stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    master = stripe_client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
    assert master.card.brand == "mastercard"
    stripe_client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": visa.id}})
    listed = stripe_client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [pm.id for pm in listed.data] == [master.id, visa.id]
    nested = stripe_client.v1.customers.payment_methods.list(customer.id)
    assert [pm.id for pm in nested.data] == [master.id, visa.id]
    detached = stripe_client.v1.payment_methods.detach(visa.id)
    assert detached.customer is None
    assert stripe_client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    types = [e.type for e in stripe_client.v1.events.list(params={"type": "payment_method.*"}).data]
    assert types == ["payment_method.detached", "payment_method.attached", "payment_method.attached"]


def test_payment_method_attached_elsewhere_cannot_be_attached(stripe_client):
    first = stripe_client.v1.customers.create(params={})
    second = stripe_client.v1.customers.create(params={})
    pm = stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": first.id})
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.payment_methods.attach(pm.id, params={"customer": second.id})


@pytest.mark.parametrize(
    ("test_id", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedStolenCard", "card_declined", "stolen_card"),
        ("pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedFraudulent", "card_declined", "fraudulent"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ],
)
def test_declining_cards_fail_to_attach_with_card_error(stripe_client, test_id, code, decline_code):
    customer = stripe_client.v1.customers.create(params={})
    with pytest.raises(stripe.CardError) as info:
        stripe_client.v1.payment_methods.attach(test_id, params={"customer": customer.id})
    assert info.value.http_status == 402
    assert (info.value.code, info.value.error.decline_code) == (code, decline_code)
    assert info.value.error.doc_url


@pytest.mark.parametrize("test_id", ["pm_card_chargeCustomerFail", "pm_card_authenticationRequired"])
def test_cards_that_fail_later_attach_fine(stripe_client, test_id):
    customer = stripe_client.v1.customers.create(params={})
    pm = stripe_client.v1.payment_methods.attach(test_id, params={"customer": customer.id})
    assert pm.customer == customer.id


@pytest.mark.parametrize(
    ("number", "brand", "last4"),
    [
        ("4242424242424242", "visa", "4242"),
        ("4000000000000002", "visa", "0002"),
        ("4000002760003184", "visa", "3184"),
        ("4000000000000341", "visa", "0341"),
        ("378282246310005", "amex", "0005"),
    ],
)
def test_create_card_from_number(stripe_client, number, brand, last4):
    pm = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 4, "exp_year": 2031, "cvc": "123"}}
    )
    assert (pm.card.brand, pm.card.last4, pm.card.exp_month, pm.card.exp_year) == (brand, last4, 4, 2031)
    assert pm.card.checks.cvc_check == "pass"


def test_fingerprint_is_stable_per_card_number(stripe_client):
    a = stripe_client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    b = stripe_client.v1.payment_methods.retrieve("pm_card_visa")
    c = stripe_client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_mastercard"}})
    assert a.id != b.id
    assert a.card.fingerprint == b.card.fingerprint != c.card.fingerprint


def test_incorrect_card_number_is_a_card_error(stripe_client):
    with pytest.raises(stripe.CardError) as info:
        stripe_client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4242424242424241", "exp_month": 1, "exp_year": 2030}}
        )
    assert (info.value.code, info.value.param) == ("incorrect_number", "card[number]")


def test_account_is_available_by_both_paths(stripe_client):
    account = stripe_client.v1.accounts.retrieve_current()
    assert set(account.to_dict()) == set(FIXTURES["account"])
    assert account.id.startswith("acct_") and account.charges_enabled is True
    assert stripe_client.v1.accounts.retrieve(account.id).id == account.id
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.accounts.retrieve("acct_other")
