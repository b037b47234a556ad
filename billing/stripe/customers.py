"""The account's Stripe customer: created once, under a key derived from the account's public id."""

from __future__ import annotations

import logging

from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

from accounts.models import Account
from billing.stripe.client import idempotent, stripe_api_key, stripe_client

logger = logging.getLogger(__name__)


def customer_metadata(account: Account) -> dict[str, str]:
    """What a Stripe customer says about its account: the public id names it in every database sharing the Stripe
    account; `account_id` (the primary key, which dj-stripe's subscriber link also needs) is only meaningful in
    the database that made the customer, and `account_for_customer` trusts it only when the public id agrees."""
    return {
        "account_id": str(account.pk),
        "account_public_id": str(account.public_id),
        djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(account.pk),
    }


def customer_ensure(*, account: Account) -> djstripe_models.Customer:
    """The account's Stripe customer, created once.

    The idempotency key is the account's public id (a UUID stored on the row), so concurrent or retried calls
    create one customer within Stripe's 24-hour window, and another database on the same Stripe account (staging,
    CI, a restored backup), whose account of the same primary key is another merchant, never replays this one's
    customer. After the window, the mirror row (found by subscriber) is what stops a second.
    """
    livemode = djstripe_settings.STRIPE_LIVE_MODE
    existing = djstripe_models.Customer.objects.filter(subscriber=account, livemode=livemode).first()
    if existing:
        return existing
    created = stripe_client().v1.customers.create(
        params={
            "email": account.billing_email,
            "name": account.name,
            "metadata": customer_metadata(account),
        },
        options=idempotent(f"customer:account:{account.public_id}"),
    )
    customer = djstripe_models.Customer.sync_from_stripe_data(created, api_key=stripe_api_key())
    if customer.subscriber_id != account.pk:
        djstripe_models.Customer.objects.filter(pk=customer.pk).update(subscriber=account)
        customer.subscriber = account
    return customer
