"""dj-stripe 2.11 syncs the sandbox's billing objects (it has no TestClock or billing Meter models)."""

from __future__ import annotations

import pytest
import stripe
from django.conf import settings as django_settings

if not django_settings.configured:
    pytest.skip("needs the project's Django settings (pytest-django)", allow_module_level=True)

from djstripe import models as djstripe_models

from tests.sandbox.billing_helpers import HOUR, advance, clock_customer, price, ts


@pytest.fixture
def dj_sandbox(sandbox, settings, monkeypatch, db):
    monkeypatch.setattr(stripe, "api_base", sandbox.base_url)
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_TEST_SECRET_KEY = sandbox.api_key
    djstripe_models.Account.get_or_retrieve_for_api_key(sandbox.api_key)
    return sandbox


def test_subscription_invoice_and_items_sync(dj_sandbox):
    key = dj_sandbox.api_key
    client = dj_sandbox.client()
    clock, customer = clock_customer(client)
    pro, team = price(client, 1500), price(client, 4500, name="Team")
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id}]})
    advance(client, clock, ts(2026, 1, 11))
    item_id = sub["items"].data[0].id
    client.v1.subscriptions.update(sub.id, params={"items": [{"id": item_id, "quantity": 2}]})
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 700, "currency": "usd"})
    advance(client, clock, ts(2026, 2, 1) + 2 * HOUR)
    client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item_id, "price": team.id}], "proration_behavior": "always_invoice"}
    )

    djstripe_models.Customer.sync_from_stripe_data(stripe.Customer.retrieve(customer.id, api_key=key), api_key=key)
    synced = djstripe_models.Subscription.sync_from_stripe_data(
        stripe.Subscription.retrieve(sub.id, api_key=key), api_key=key
    )
    assert synced.status == "active"
    assert synced.customer.id == customer.id
    items = list(djstripe_models.SubscriptionItem.objects.filter(subscription=synced))
    assert [(i.id, i.price.id, i.quantity) for i in items] == [(item_id, team.id, 2)]

    invoices = stripe.Invoice.list(customer=customer.id, api_key=key, limit=100).data
    assert len(invoices) == 3
    for data in invoices:
        invoice = djstripe_models.Invoice.sync_from_stripe_data(data, api_key=key)
        # The sandbox's invoice has no top-level `subscription` (as Stripe's API); the project's
        # billing.stripe.mirror hook (installed by the billing app) links the mirror from `parent`.
        assert "subscription" not in data
        assert invoice.subscription_id == sub.id
        assert invoice.stripe_data["status"] == "paid"
        line_ids = [line.id for line in data.lines.data]
        assert djstripe_models.LineItem.objects.filter(id__in=line_ids).count() == len(line_ids)
    renewal = next(i for i in invoices if i.billing_reason == "subscription_cycle")
    assert djstripe_models.Invoice.objects.get(id=renewal.id).amount_due == renewal.amount_due

    for data in stripe.InvoiceItem.list(customer=customer.id, api_key=key).data:
        item = djstripe_models.InvoiceItem.sync_from_stripe_data(data, api_key=key)
        assert item.customer_id == customer.id
        assert item.invoice_id == data.invoice


def test_djstripe_upcoming_invoice_uses_create_preview(dj_sandbox):
    key = dj_sandbox.api_key
    client = dj_sandbox.client()
    _, customer = clock_customer(client)
    pro = price(client, 1500)
    client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": pro.id, "quantity": 2}]})
    djstripe_models.Customer.sync_from_stripe_data(stripe.Customer.retrieve(customer.id, api_key=key), api_key=key)
    upcoming = djstripe_models.Invoice.upcoming(api_key=key, customer=customer.id)
    assert upcoming.stripe_data["amount_due"] == 3000
    assert upcoming.stripe_data["billing_reason"] == "subscription_cycle"
    assert upcoming.stripe_data["lines"]["data"][0]["period"]["start"] == ts(2026, 2, 1)
