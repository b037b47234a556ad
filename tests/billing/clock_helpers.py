"""A merchant on a sandbox test clock: the clock, its Stripe customer (a working card on file), the mirror link."""

from __future__ import annotations

from datetime import datetime

from djstripe import models as djstripe_models

from billing.stripe.client import stripe_api_key


def clocked_customer(stripe_client, account, *, start: datetime):
    """A test clock frozen at `start` and a customer on it, mirrored and linked to `account`.

    Linked by hand (as the webhook of a Checkout would), so tests choose the subscription they create.
    Returns (clock, customer).
    """
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(start.timestamp())})
    customer = stripe_client.v1.customers.create(
        params={
            "email": account.billing_email,
            "test_clock": clock.id,
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
            "metadata": {"account_id": str(account.pk)},
        }
    )
    mirrored = djstripe_models.Customer.sync_from_stripe_data(customer, api_key=stripe_api_key())
    djstripe_models.Customer.objects.filter(pk=mirrored.pk).update(subscriber=account)
    return clock, customer
