"""dj-stripe 2.11 against the sandbox: what it fetches on first key use and the models it syncs."""

from __future__ import annotations

import pytest
import stripe
from django.conf import settings as django_settings

if not django_settings.configured:
    pytest.skip("needs the project's Django settings (pytest-django)", allow_module_level=True)

# Imported only now: dj-stripe's models need configured settings.
from djstripe import models as djstripe_models


@pytest.fixture
def dj_sandbox(sandbox, settings, monkeypatch, db):
    """dj-stripe pointed at the sandbox the way ``STRIPE_API_HOST`` does (it sets ``stripe.api_base``)."""
    monkeypatch.setattr(stripe, "api_base", sandbox.base_url)
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_TEST_SECRET_KEY = sandbox.api_key
    return sandbox


def test_first_use_of_a_key_fetches_and_syncs_the_account(dj_sandbox):
    owner = djstripe_models.Account.get_or_retrieve_for_api_key(dj_sandbox.api_key)
    account = djstripe_models.Account.objects.get(id=owner.id)
    assert account.id.startswith("acct_")
    assert account.charges_enabled is True
    api_key = djstripe_models.APIKey.objects.get(secret=dj_sandbox.api_key)
    assert api_key.djstripe_owner_account_id == account.id
    assert api_key.livemode is False


def test_customer_with_default_payment_method_syncs(dj_sandbox):
    key = dj_sandbox.api_key
    djstripe_models.Account.get_or_retrieve_for_api_key(key)
    created = dj_sandbox.client().v1.customers.create(
        params={"email": "dj@example.com", "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    data = stripe.Customer.retrieve(created.id, api_key=key)
    customer = djstripe_models.Customer.sync_from_stripe_data(data, api_key=key)
    assert customer.email == "dj@example.com"
    assert customer.default_payment_method.id == created.invoice_settings.default_payment_method
    assert customer.default_payment_method.stripe_data["card"]["last4"] == "4242"


def test_product_and_price_sync(dj_sandbox):
    key = dj_sandbox.api_key
    djstripe_models.Account.get_or_retrieve_for_api_key(key)
    price_data = dj_sandbox.client().v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
            "lookup_key": "pro_monthly",
        }
    )
    price = djstripe_models.Price.sync_from_stripe_data(stripe.Price.retrieve(price_data.id, api_key=key), api_key=key)
    assert price.product.name == "Pro"
    assert price.unit_amount == 1500
    assert price.lookup_key == "pro_monthly"
    assert price.recurring["interval"] == "month"


def test_payment_method_sync_and_djstripe_attach(dj_sandbox):
    key = dj_sandbox.api_key
    djstripe_models.Account.get_or_retrieve_for_api_key(key)
    created = dj_sandbox.client().v1.customers.create(params={"email": "attach@example.com"})
    customer = djstripe_models.Customer.sync_from_stripe_data(stripe.Customer.retrieve(created.id, api_key=key))
    payment_method = djstripe_models.PaymentMethod.attach("pm_card_mastercard", customer, api_key=key)
    assert payment_method.customer_id == customer.id
    assert payment_method.stripe_data["card"]["brand"] == "mastercard"
    listed = list(djstripe_models.PaymentMethod.api_list(api_key=key, customer=customer.id))
    assert [pm.id for pm in listed] == [payment_method.id]


def test_events_sync(dj_sandbox):
    key = dj_sandbox.api_key
    djstripe_models.Account.get_or_retrieve_for_api_key(key)
    dj_sandbox.client().v1.products.create(params={"name": "Evented"})
    # As a webhook body: dj-stripe 2.11 reads ``request`` as a dict only, and stripe 15 objects are not
    # dicts, so syncing a ``stripe.Event`` object as-is stores its repr in ``request_id`` (too long).
    event_data = stripe.Event.list(api_key=key, limit=1).data[0].to_dict()
    event = djstripe_models.Event.sync_from_stripe_data(event_data, api_key=key)
    assert event.type == "product.created"
    assert event.request_id == event_data["request"]["id"]
