"""Helpers for the usage tests: an account on a plan (a mirrored subscription), events, and posting them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from djstripe import models as djstripe_models

from accounts.services import api_key_create
from plans.models import PlanPrice

PLATFORM_TOKEN = "platform-token-for-tests-0123456789abcdef"
_ids = itertools.count(1)


def subscribe(account, *, plan="pro", interval="month", anchor: datetime, status="active", started=None):
    """Mirror a Stripe subscription for the account, as dj-stripe would after the webhooks (no Stripe call)."""
    price = PlanPrice.objects.get(plan__code=plan, interval=interval, currency="usd")
    if not price.stripe_price_id:
        price.stripe_price_id = f"price_{plan}_{interval}"
        price.save(update_fields=["stripe_price_id"])
    n = next(_ids)
    customer = djstripe_models.Customer.objects.filter(subscriber=account).first()
    if customer is None:
        customer = djstripe_models.Customer.objects.create(
            id=f"cus_usage{account.pk}x{n}",
            subscriber=account,
            livemode=False,
            stripe_data={"id": f"cus_usage{account.pk}x{n}", "email": account.billing_email},
            email=account.billing_email,
        )
    anchor_ts = int(anchor.timestamp())
    data = {
        "id": f"sub_usage{n}",
        "object": "subscription",
        "status": status,
        "customer": customer.id,
        "billing_cycle_anchor": anchor_ts,
        "start_date": int((started or anchor).timestamp()),
        "ended_at": None,
        "items": {"data": [{"price": {"id": price.stripe_price_id}, "quantity": 1}]},
    }
    return djstripe_models.Subscription.objects.create(
        id=data["id"],
        customer=customer,
        livemode=False,
        stripe_data=data,
        created=datetime.fromtimestamp(anchor_ts + n, tz=UTC),
    )


def change_plan(subscription, *, plan, interval="month"):
    price = PlanPrice.objects.get(plan__code=plan, interval=interval, currency="usd")
    if not price.stripe_price_id:
        price.stripe_price_id = f"price_{plan}_{interval}"
        price.save(update_fields=["stripe_price_id"])
    data = dict(subscription.stripe_data)
    data["items"] = {"data": [{"price": {"id": price.stripe_price_id}, "quantity": 1}]}
    subscription.stripe_data = data
    subscription.save(update_fields=["stripe_data"])


def event(key, *, at: datetime, metric="tickets", quantity=1, account=None):
    body = {"metric": metric, "quantity": quantity, "occurred_at": at.isoformat(), "idempotency_key": key}
    if account is not None:
        body["account"] = account.pk
    return body


def platform_post(client, events, token=PLATFORM_TOKEN):
    return client.post("/api/v1/usage-events", {"events": events}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def api_key_for(persona) -> str:
    _key, plaintext = api_key_create(account=persona.account, actor=persona.user, name="helpdesk backend")
    return plaintext
