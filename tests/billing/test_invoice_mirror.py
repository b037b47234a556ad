"""Invoices in dj-stripe's mirror stay linked to their subscription although Stripe's current API (and so the
sandbox) has no top-level `subscription` on an invoice: only `parent.subscription_details.subscription`."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from djstripe import models as djstripe_models

from billing.stripe.client import stripe_api_key
from billing.stripe.endpoints import webhook_endpoint_ensure
from billing.subscriptions.sync import invoice_refresh
from plans.models import PlanPrice


def _flush(sandbox):
    sandbox.request("POST", "/_sandbox/webhooks/flush", api_key=None)


@pytest.fixture
def paying(sandbox, stripe_client, live_server, owner):
    """The owner's account with a Stripe customer (card on file) and the Pro monthly price synced."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    webhook_endpoint_ensure(base_url=live_server.url)
    customer = stripe_client.v1.customers.create(
        params={
            "email": owner.account.billing_email,
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
            "metadata": {"account_id": str(owner.account.pk)},
        }
    )
    mirrored = djstripe_models.Customer.sync_from_stripe_data(customer, api_key=stripe_api_key())
    djstripe_models.Customer.objects.filter(pk=mirrored.pk).update(subscriber=owner.account)
    owner.customer = customer
    owner.price = PlanPrice.objects.get(plan__code="pro", interval="month")
    owner.sandbox = sandbox
    yield owner
    _flush(sandbox)


def test_invoice_from_a_webhook_is_linked_to_its_subscription(paying, stripe_client):
    subscription = stripe_client.v1.subscriptions.create(
        params={"customer": paying.customer.id, "items": [{"price": paying.price.stripe_price_id}]}
    )
    _flush(paying.sandbox)  # dj-stripe's own processing of invoice.* events syncs the invoice

    invoice = djstripe_models.Invoice.objects.get(id=subscription.latest_invoice)
    assert invoice.subscription_id == subscription.id
    assert list(djstripe_models.Subscription.objects.get(id=subscription.id).invoices.all()) == [invoice]
    # The mirror keeps Stripe's shape: the old key is not invented in the stored data.
    assert "subscription" not in invoice.stripe_data
    assert invoice.stripe_data["parent"]["subscription_details"]["subscription"] == subscription.id


def test_invoice_refresh_links_an_invoice_of_a_subscription_not_yet_mirrored(paying, stripe_client):
    subscription = stripe_client.v1.subscriptions.create(
        params={"customer": paying.customer.id, "items": [{"price": paying.price.stripe_price_id}]}
    )
    _flush(paying.sandbox)
    djstripe_models.Invoice.objects.all().delete()
    djstripe_models.Subscription.objects.filter(id=subscription.id).delete()

    assert invoice_refresh(invoice_id=subscription.latest_invoice) == paying.account
    assert djstripe_models.Invoice.objects.get(id=subscription.latest_invoice).subscription_id == subscription.id


def test_an_invoice_of_no_subscription_stays_unlinked(paying, stripe_client):
    stripe_client.v1.invoice_items.create(params={"customer": paying.customer.id, "amount": 700, "currency": "usd"})
    invoice = stripe_client.v1.invoices.create(
        params={"customer": paying.customer.id, "pending_invoice_items_behavior": "include"}
    )
    stripe_client.v1.invoices.finalize_invoice(invoice.id)
    _flush(paying.sandbox)

    mirrored = djstripe_models.Invoice.objects.get(id=invoice.id)
    assert (mirrored.subscription_id, mirrored.stripe_data["total"]) == (None, 700)
