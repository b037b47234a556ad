"""Checkout: start a Stripe Checkout Session for a plan price, and complete it when Stripe says so."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.errors import Conflict, DomainError, NotAllowed
from accounts.models import Account, AccountStatus
from accounts.services import audit_record, require_manager
from billing.models import (
    CheckoutAttempt,
    CheckoutStatus,
)
from billing.stripe.client import idempotent, stripe_client
from billing.stripe.customers import customer_ensure
from billing.stripe.objects import stripe_object_with_account
from billing.subscriptions.seats import seat_quantity
from billing.subscriptions.selectors import LIVE_STATUSES, subscription_current
from billing.subscriptions.sync import subscription_refresh
from fraud.services import checkout_assess as fraud_checkout_assess
from plans.models import PlanPrice

logger = logging.getLogger(__name__)

CHECKOUT_LIFETIME = timedelta(minutes=30)  # Stripe's minimum; a merchant who walks away is unblocked soon

# Stripe refuses a Checkout trial_end less than 48 hours away; a trial that ends sooner is charged now.
MIN_TRIAL_LEFT_FOR_CHECKOUT = timedelta(hours=48)


def plan_price_require_for_sale(plan_price: PlanPrice) -> None:
    """Refuse a price a merchant may not pick: archived, of a hidden or archived plan, or not yet on Stripe."""
    if not (plan_price.is_active and plan_price.plan.is_active and plan_price.plan.is_public):
        raise DomainError("This plan can't be chosen.", field="plan_price", code="plan_unavailable")
    if not plan_price.stripe_price_id:
        raise DomainError("This plan isn't available for sale yet.", field="plan_price", code="plan_unavailable")


def checkout_start(
    *, account: Account, actor, plan_price: PlanPrice, ip: str | None = None, ip_country: str = ""
) -> CheckoutAttempt:
    """Open a Stripe Checkout Session (subscription mode) for the account and return its attempt.

    Only owners and admins may; not while a subscription binds the account; a repeat for the same price
    while a session is open returns that session; another price, or a session that looks expired, is
    closed at Stripe first, and one that completed there refuses the new start. The account row is
    locked for the duration, so concurrent starts are serialised.
    """
    require_manager(account=account, actor=actor)
    plan_price_require_for_sale(plan_price)
    if account.status in (AccountStatus.BLOCKED, AccountStatus.CLOSED):
        raise NotAllowed("This account can't start a subscription; contact support.", code="account_not_allowed")
    # Fraud admits the checkout (or refuses it: review pending, card-testing cool-off) and notes the client's IP.
    fraud_checkout_assess(account=account, ip=ip, ip_country=ip_country)

    customer = customer_ensure(account=account)
    completed_at_stripe = None
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=account.pk)
        live = subscription_current(account=account)
        if live is not None and live.stripe_data.get("status") in LIVE_STATUSES:
            raise Conflict(
                "This account already has a subscription; change its plan instead.", code="already_subscribed"
            )
        open_attempt = CheckoutAttempt.objects.filter(account=account, status=CheckoutStatus.OPEN).first()
        now = timezone.now()
        still_open = open_attempt and open_attempt.expires_at and open_attempt.expires_at > now
        if still_open and open_attempt.plan_price_id == plan_price.pk:
            return open_attempt  # a double click or a second tab: the same session
        if open_attempt:
            # Replaced or looking expired: Stripe decides whether it is over (see _checkout_close).
            completed_at_stripe = _checkout_close(open_attempt)
        if completed_at_stripe is None:
            attempt = _checkout_open(
                account=account, actor=actor, plan_price=plan_price, customer_id=customer.id, now=now
            )
    if completed_at_stripe is not None:
        # Outside the lock's transaction, so the completion we record is not rolled back with the refusal.
        checkout_completed(session_id=completed_at_stripe)
        raise Conflict("A checkout for this account has just completed.", code="already_subscribed")
    return attempt


def _checkout_open(*, account: Account, actor, plan_price: PlanPrice, customer_id: str, now) -> CheckoutAttempt:
    """Create the attempt and its Stripe session (the caller holds the account's lock)."""
    attempt = CheckoutAttempt.objects.create(account=account, plan_price=plan_price, started_by=actor)
    params = {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(account.pk),
        "line_items": [
            {"price": plan_price.stripe_price_id, "quantity": seat_quantity(account=account, plan_price=plan_price)}
        ],
        "success_url": f"{settings.SITE_URL}/billing/checkout/success/?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{settings.SITE_URL}/billing/checkout/cancelled/",
        "expires_at": int((now + CHECKOUT_LIFETIME).timestamp()),
        "metadata": {"account_id": str(account.pk), "checkout_attempt_id": str(attempt.pk)},
        "subscription_data": {"metadata": {"account_id": str(account.pk)}},
    }
    trial_left = (account.trial_ends_at - now) if account.trial_ends_at else None
    if account.status == AccountStatus.TRIALING and trial_left and trial_left >= MIN_TRIAL_LEFT_FOR_CHECKOUT:
        # Honour the trial: the card is taken now, the first charge happens when the trial ends.
        params["subscription_data"]["trial_end"] = int(account.trial_ends_at.timestamp())
    session = stripe_client().v1.checkout.sessions.create(params=params, options=idempotent(attempt.idempotency_key))
    attempt.status = CheckoutStatus.OPEN
    attempt.stripe_session_id = session.id
    attempt.url = session.url
    attempt.expires_at = datetime.fromtimestamp(session.expires_at, tz=UTC)
    attempt.save(update_fields=["status", "stripe_session_id", "url", "expires_at"])
    audit_record(
        account=account,
        actor=actor,
        action="checkout.started",
        target=f"checkout:{attempt.pk}",
        after={"plan": plan_price.plan.code, "interval": plan_price.interval, "session": session.id},
    )
    return attempt


def _checkout_close(attempt: CheckoutAttempt) -> str | None:
    """Close an open attempt before another opens; return its session id if it completed at Stripe instead.

    Our `expires_at` is only what we expect: a session that looks expired here may have completed at Stripe
    with its webhook still on the way, and discarding it would let a second session make a second live
    subscription. So Stripe is asked first, and only a session Stripe calls expired (or that we expire
    there now) is marked expired here.
    """
    client = stripe_client()
    session = client.v1.checkout.sessions.retrieve(attempt.stripe_session_id)
    if session.status == "open":
        try:
            session = client.v1.checkout.sessions.expire(
                attempt.stripe_session_id, options=idempotent(f"{attempt.idempotency_key}:expire")
            )
        except stripe.InvalidRequestError:
            # It completed (or expired) between our read and the expiry: read again what it became.
            session = client.v1.checkout.sessions.retrieve(attempt.stripe_session_id)
    if session.status == "complete":
        return attempt.stripe_session_id
    if session.status != "expired":
        raise Conflict("The previous checkout could not be closed; try again in a moment.", code="checkout_busy")
    CheckoutAttempt.objects.filter(pk=attempt.pk, status=CheckoutStatus.OPEN).update(status=CheckoutStatus.EXPIRED)
    return None


def checkout_completed(*, session_id: str) -> Account | None:
    """A Checkout Session completed: mark our attempt, mirror the subscription, activate the account."""
    session, account = stripe_object_with_account(
        stripe_client().v1.checkout.sessions, session_id, kind="checkout session"
    )
    if account is None:
        return None
    if session.get("mode") == "setup":
        from billing.dunning.card import card_updated  # dunning builds on this module

        card_updated(account=account, session=session)
        return account
    CheckoutAttempt.objects.filter(stripe_session_id=session_id).exclude(status=CheckoutStatus.COMPLETED).update(
        status=CheckoutStatus.COMPLETED, completed_at=timezone.now()
    )
    if session.get("subscription"):
        subscription_refresh(subscription_id=session["subscription"])
    return account
