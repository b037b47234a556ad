"""Billing writes: the account's Stripe customer, checkout, and reactions to Stripe's webhooks."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

from accounts.errors import Conflict, DomainError, NotAllowed
from accounts.models import Account, AccountStatus
from accounts.services import account_change_status, account_set_plan, audit_record, require_manager
from billing import selectors
from billing.models import (
    CheckoutAttempt,
    CheckoutStatus,
    DunningCase,
    DunningStatus,
    PlanChangeStatus,
    ScheduledPlanChange,
)
from billing.stripe.client import idempotent, stripe_api_key, stripe_client
from billing.stripe.objects import invoice_subscription_id, stripe_object_with_account
from billing.subscriptions.seats import seat_quantity
from fraud.services import checkout_assess as fraud_checkout_assess
from plans.models import PlanPrice

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


# --- checkout --------------------------------------------------------------------------------------------

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
    while a session is open returns that session, another price expires it first. The account row is
    locked for the duration, so concurrent starts are serialised.
    """
    require_manager(account=account, actor=actor)
    plan_price_require_for_sale(plan_price)
    if account.status in (AccountStatus.BLOCKED, AccountStatus.CLOSED):
        raise NotAllowed("This account can't start a subscription; contact support.", code="account_not_allowed")
    # Fraud admits the checkout (or refuses it: review pending, card-testing cool-off) and notes the client's IP.
    fraud_checkout_assess(account=account, ip=ip, ip_country=ip_country)

    customer = customer_ensure(account=account)
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=account.pk)
        live = selectors.subscription_current(account=account)
        if live is not None and live.stripe_data.get("status") in selectors.LIVE_STATUSES:
            raise Conflict(
                "This account already has a subscription; change its plan instead.", code="already_subscribed"
            )
        open_attempt = CheckoutAttempt.objects.filter(account=account, status=CheckoutStatus.OPEN).first()
        now = timezone.now()
        if open_attempt and open_attempt.expires_at and open_attempt.expires_at > now:
            if open_attempt.plan_price_id == plan_price.pk:
                return open_attempt
            _checkout_expire(open_attempt)
        elif open_attempt:
            CheckoutAttempt.objects.filter(pk=open_attempt.pk).update(status=CheckoutStatus.EXPIRED)
        attempt = CheckoutAttempt.objects.create(account=account, plan_price=plan_price, started_by=actor)
        params = {
            "mode": "subscription",
            "customer": customer.id,
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
        session = stripe_client().v1.checkout.sessions.create(
            params=params, options=idempotent(attempt.idempotency_key)
        )
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


def _checkout_expire(attempt: CheckoutAttempt) -> None:
    try:
        stripe_client().v1.checkout.sessions.expire(
            attempt.stripe_session_id, options=idempotent(f"checkout:attempt:{attempt.pk}:expire")
        )
    except stripe.InvalidRequestError as error:
        # Already completed at Stripe: the webhook is on its way; do not open a second session.
        session = stripe_client().v1.checkout.sessions.retrieve(attempt.stripe_session_id)
        if session.status == "complete":
            raise Conflict("A checkout for this account has just completed.", code="already_subscribed") from error
        if session.status != "expired":
            raise
    CheckoutAttempt.objects.filter(pk=attempt.pk).update(status=CheckoutStatus.EXPIRED)


# --- reactions to Stripe's events --------------------------------------------------------------------------
# A handler never trusts the event's payload or order: it re-reads the object from Stripe, refreshes the
# mirror, and recomputes the account's status from the account's current subscription.

ACCOUNT_STATUS_FOR_SUBSCRIPTION = {
    "trialing": AccountStatus.ACTIVE,  # a plan chosen with a card on file; the trial runs out its days
    "active": AccountStatus.ACTIVE,
    "past_due": AccountStatus.PAST_DUE,
    "unpaid": AccountStatus.SUSPENDED,
    "canceled": AccountStatus.SUSPENDED,
    "incomplete_expired": None,  # never started: the account keeps the status it had
    "incomplete": None,
    "paused": AccountStatus.SUSPENDED,
}


def subscription_refresh(*, subscription_id: str) -> Account | None:
    """Re-read a subscription from Stripe into the mirror and bring its account's status in line."""
    data, account = stripe_object_with_account(stripe_client().v1.subscriptions, subscription_id, kind="subscription")
    if account is None:
        return None
    djstripe_models.Subscription.sync_from_stripe_data(data, api_key=stripe_api_key())
    account_sync_status_from_subscription(account=account)
    from billing.usage import usage_period_raise_plan  # an upgrade applies to the whole current usage period

    usage_period_raise_plan(account=account)
    return account


def invoice_refresh(*, invoice_id: str) -> Account | None:
    data, account = stripe_object_with_account(stripe_client().v1.invoices, invoice_id, kind="invoice")
    if account is None:
        return None
    subscription_id = invoice_subscription_id(data)
    if subscription_id:
        subscription_refresh(subscription_id=subscription_id)
    djstripe_models.Invoice.sync_from_stripe_data(data, api_key=stripe_api_key())
    return account


def checkout_completed(*, session_id: str) -> Account | None:
    """A Checkout Session completed: mark our attempt, mirror the subscription, activate the account."""
    session, account = stripe_object_with_account(
        stripe_client().v1.checkout.sessions, session_id, kind="checkout session"
    )
    if account is None:
        return None
    if session.get("mode") == "setup":
        from billing.dunning import card_updated  # dunning builds on this module

        card_updated(account=account, session=session)
        return account
    CheckoutAttempt.objects.filter(stripe_session_id=session_id).exclude(status=CheckoutStatus.COMPLETED).update(
        status=CheckoutStatus.COMPLETED, completed_at=timezone.now()
    )
    if session.get("subscription"):
        subscription_refresh(subscription_id=session["subscription"])
    return account


def account_sync_status_from_subscription(*, account: Account) -> Account:
    """Set the account's status from its current subscription (one audited transition, or nothing)."""
    subscription = selectors.subscription_current(account=account)
    if subscription is None:
        return account
    status = subscription.stripe_data.get("status")
    summary = selectors.subscription_summary(account=account)
    downgrade_pending = ScheduledPlanChange.objects.filter(
        account=account, status=PlanChangeStatus.APPLIED, effective_at__gt=timezone.now()
    ).exists()  # a downgrade put on Stripe ahead of the boundary: the paid-for plan stays in force until then
    if status in ("active", "trialing", "past_due") and summary and summary.plan_price and not downgrade_pending:
        account = account_set_plan(
            account=account,
            plan=summary.plan_price.plan,
            reason=f"Stripe subscription {subscription.id} is on {summary.plan_price.lookup_key}",
        )
    target = ACCOUNT_STATUS_FOR_SUBSCRIPTION.get(status)
    if (
        target == AccountStatus.PAST_DUE
        and DunningCase.objects.filter(account=account, status=DunningStatus.SUSPENDED).exists()
    ):
        target = AccountStatus.SUSPENDED  # dunning's grace is over: still past due at Stripe, suspended here
    account.refresh_from_db(fields=["status"])
    if target is None or account.status == target or account.status in (AccountStatus.BLOCKED, AccountStatus.CLOSED):
        # Blocked and closed are staff decisions; Stripe's events don't undo them.
        return account
    return account_change_status(
        account=account, to=target, actor=None, reason=f"Stripe subscription {subscription.id} is {status}"
    )


# --- webhook endpoint ------------------------------------------------------------------------------------


def webhook_endpoint_ensure(*, base_url: str) -> djstripe_models.WebhookEndpoint:
    """Register (once) a Stripe webhook endpoint delivering every event to dj-stripe's view at `base_url`.

    The endpoint's uuid is derived from the base URL, so the create is idempotent and a re-run finds it.
    """
    base_url = base_url.rstrip("/")
    endpoint_uuid = uuid.uuid5(uuid.NAMESPACE_URL, base_url)
    existing = djstripe_models.WebhookEndpoint.objects.filter(djstripe_uuid=endpoint_uuid).first()
    if existing and existing.secret:
        try:
            stripe_client().v1.webhook_endpoints.retrieve(existing.id)
            return existing
        except stripe.InvalidRequestError as error:
            if error.code != "resource_missing":
                raise
            # Stripe no longer has it (a reset sandbox, a deleted endpoint): register it again.
            existing.delete()
    url = base_url + reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    data = stripe_client().v1.webhook_endpoints.create(
        params={
            "url": url,
            "enabled_events": ["*"],
            "api_version": djstripe_settings.STRIPE_API_VERSION,
            "metadata": {"djstripe_uuid": str(endpoint_uuid)},
        },
        options=idempotent(f"webhook_endpoint:{endpoint_uuid}"),
    )
    endpoint = djstripe_models.WebhookEndpoint.sync_from_stripe_data(data, api_key=stripe_api_key())
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=data["secret"])
    endpoint.refresh_from_db()
    return endpoint
