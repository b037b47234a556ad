"""Reads of the account's subscription, invoices and card, from dj-stripe's mirror."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from djstripe import models as djstripe_models

from accounts.models import Account
from billing.stripe.objects import stripe_id, stripe_time
from plans.models import PlanPrice
from plans.selectors import plan_price_by_stripe_id

# Subscriptions that still bind the merchant; the first found in this order is "the" subscription.
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete")


def customer_for_account(*, account: Account) -> djstripe_models.Customer | None:
    return djstripe_models.Customer.objects.filter(subscriber=account).order_by("-created").first()


def subscription_current(*, account: Account) -> djstripe_models.Subscription | None:
    """The account's subscription that matters now: a live one if any, else the most recent."""
    subscriptions = list(djstripe_models.Subscription.objects.filter(customer__subscriber=account).order_by("-created"))
    for status in LIVE_STATUSES:
        for subscription in subscriptions:
            if subscription.stripe_data.get("status") == status:
                return subscription
    return subscriptions[0] if subscriptions else None


@dataclass(frozen=True)
class SubscriptionSummary:
    id: str
    status: str
    plan_price: PlanPrice | None
    quantity: int
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool


def subscription_summary(
    *, account: Account, subscription: djstripe_models.Subscription | None = None
) -> SubscriptionSummary | None:
    """The account's current subscription in our terms (`subscription`: the current one, when the caller has it)."""
    subscription = subscription or subscription_current(account=account)
    if subscription is None:
        return None
    data = subscription.stripe_data
    items = (data.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    price_id = stripe_id(first.get("price"))
    # Modern API: the billing period lives on the items; older objects carry it on the subscription.
    period_start = first.get("current_period_start") or data.get("current_period_start")
    period_end = first.get("current_period_end") or data.get("current_period_end")
    return SubscriptionSummary(
        id=subscription.id,
        status=data.get("status") or "",
        plan_price=plan_price_by_stripe_id(stripe_price_id=price_id) if price_id else None,
        quantity=first.get("quantity") or 1,
        current_period_start=stripe_time(period_start),
        current_period_end=stripe_time(period_end),
        trial_end=stripe_time(data.get("trial_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
    )


def invoices_for_account(*, account: Account, limit: int = 24):
    return djstripe_models.Invoice.objects.filter(customer__subscriber=account).order_by("-created")[:limit]


@dataclass(frozen=True)
class CardSummary:
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None


def default_card(*, account: Account) -> CardSummary | None:
    customer = customer_for_account(account=account)
    if customer is None or customer.default_payment_method is None:
        return None
    card = customer.default_payment_method.stripe_data.get("card") or {}
    return CardSummary(card.get("brand", ""), card.get("last4", ""), card.get("exp_month"), card.get("exp_year"))
