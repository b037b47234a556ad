"""The account's Stripe customer: created once, under a key derived from the account."""

from __future__ import annotations

import logging

from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

from accounts.models import Account
from billing.stripe.client import idempotent, stripe_api_key, stripe_client

logger = logging.getLogger(__name__)


def customer_ensure(*, account: Account) -> djstripe_models.Customer:
    """The account's Stripe customer, created once.

    The idempotency key is derived from the account, so concurrent or retried calls create one customer
    within Stripe's 24-hour window; after it, the mirror row (found by subscriber) is what stops a second.
    """
    livemode = djstripe_settings.STRIPE_LIVE_MODE
    existing = djstripe_models.Customer.objects.filter(subscriber=account, livemode=livemode).first()
    if existing:
        return existing
    created = stripe_client().v1.customers.create(
        params={
            "email": account.billing_email,
            "name": account.name,
            "metadata": {"account_id": str(account.pk), djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(account.pk)},
        },
        options=idempotent(f"customer:account:{account.pk}"),
    )
    customer = djstripe_models.Customer.sync_from_stripe_data(created, api_key=stripe_api_key())
    if customer.subscriber_id != account.pk:
        djstripe_models.Customer.objects.filter(pk=customer.pk).update(subscriber=account)
        customer.subscriber = account
    return customer
