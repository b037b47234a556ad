"""The mirror's sync: re-read a subscription or invoice into dj-stripe; bring the account's status and plan in line."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account, AccountStatus
from accounts.services import account_change_status, account_set_plan
from billing.domain_events import subscription_changed_record, subscription_facts
from billing.models import (
    DunningCase,
    DunningStatus,
    PlanChangeStatus,
    ScheduledPlanChange,
)
from billing.stripe.client import first_in_turn, retrieve_or_none, stripe_client
from billing.stripe.mirror import mirror_sync
from billing.stripe.objects import (
    account_for_customer,
    invoice_subscription_id,
    stripe_id,
    stripe_object_with_account,
)
from billing.stripe.ordering import customer_serialized
from billing.subscriptions.selectors import subscription_current, subscription_summary

logger = logging.getLogger(__name__)

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
    """Re-read a subscription from Stripe into the mirror and bring its account's status in line.

    Under its customer's lock (the one the event worker holds for an event): a request refreshing after its own
    write and the worker applying that write's events take turns, each re-reading Stripe inside its turn."""
    with customer_serialized(_customer_of_subscription(subscription_id)):
        return _subscription_refresh(subscription_id)


def _customer_of_subscription(subscription_id: str) -> str | None:
    """The customer whose lock a subscription's refresh takes: the mirror's, else Stripe's (a new subscription)."""
    mirrored = djstripe_models.Subscription.objects.filter(id=subscription_id).values_list("customer_id", flat=True)
    if customer_id := mirrored.first():
        return customer_id
    data = retrieve_or_none(stripe_client().v1.subscriptions, subscription_id)
    return stripe_id(data.get("customer")) if data else None


def _subscription_refresh(subscription_id: str) -> Account | None:
    data, account = stripe_object_with_account(stripe_client().v1.subscriptions, subscription_id, kind="subscription")
    if account is None:
        return None
    with transaction.atomic():  # the mirror's move and its event, together
        mirror = djstripe_models.Subscription.objects.filter(id=data["id"]).values_list("stripe_data", flat=True)
        stored = mirror.first()
        moved = mirror_sync(djstripe_models.Subscription, data, stored=stored)
        if moved:
            subscription_changed_record(account=account, data=data, before=subscription_facts(stored))
    # The status always (dunning or a plan change may have moved since the last refresh, even in this turn).
    account_sync_status_from_subscription(account=account)
    if not first_in_turn(("subscription followed", data["id"])) and not moved:
        # Refreshed before in this batch of events, from this same read: the usage periods and the ledger
        # follow the subscription alone (no handler of the batch moves them), and they followed it then.
        return account
    # An anchor move cuts the open usage period; an upgrade applies to the whole current one; a
    # subscription that stops renewing has its pending overage items billed final (never stranded).
    from billing.ledger.rehome import ledger_entries_rehome_stranded
    from billing.usage.cuts import usage_periods_follow_subscription

    usage_periods_follow_subscription(account=account)
    ledger_entries_rehome_stranded(account=account)
    return account


def invoice_refresh(*, invoice_id: str) -> Account | None:
    data, account = stripe_object_with_account(stripe_client().v1.invoices, invoice_id, kind="invoice")
    if account is None:
        return None
    subscription_id = invoice_subscription_id(data)
    if subscription_id:
        subscription_refresh(subscription_id=subscription_id)
    mirror_sync(djstripe_models.Invoice, data)
    return account


def account_status_for_subscription(*, account: Account, stripe_status: str) -> str | None:
    """The status an account should have for its subscription's Stripe status (None: keep the one it has)."""
    target = ACCOUNT_STATUS_FOR_SUBSCRIPTION.get(stripe_status)
    if (
        target in (AccountStatus.ACTIVE, AccountStatus.PAST_DUE)
        and DunningCase.objects.filter(account=account, status=DunningStatus.SUSPENDED).exists()
    ):
        # Dunning suspended the account for an invoice still unpaid: after its grace period, or at once on a hard
        # decline. That invoice may be past due at Stripe or a one-off (an annual plan's or a final period's
        # overage, whose subscription stays active): either way the account stays suspended until it is paid.
        target = AccountStatus.SUSPENDED
    elif target == AccountStatus.PAST_DUE and account.status == AccountStatus.SUSPENDED:
        # Only a payment lifts a suspension (the subscription active again): one Stripe still calls past due,
        # with an invoice ops wrote off (the case closed, the suspension stands) or another one open, holds.
        target = AccountStatus.SUSPENDED
    return target


def account_sync_status_from_subscription(*, account: Account) -> Account:
    """Set the account's status from its current subscription (one audited transition, or nothing)."""
    subscription = subscription_current(account=account)
    if subscription is None:
        return account
    status = subscription.stripe_data.get("status")
    summary = subscription_summary(account=account, subscription=subscription)
    downgrade_pending = ScheduledPlanChange.objects.filter(
        account=account, status=PlanChangeStatus.APPLIED, effective_at__gt=timezone.now()
    ).exists()  # a downgrade put on Stripe ahead of the boundary: the paid-for plan stays in force until then
    if status in ("active", "trialing", "past_due") and summary and summary.plan_price and not downgrade_pending:
        account = account_set_plan(
            account=account,
            plan=summary.plan_price.plan,
            reason=f"Stripe subscription {subscription.id} is on {summary.plan_price.lookup_key}",
        )
    account.refresh_from_db(fields=["status"])
    target = account_status_for_subscription(account=account, stripe_status=status)
    if target is None or account.status == target or account.status in (AccountStatus.BLOCKED, AccountStatus.CLOSED):
        # Blocked and closed are staff decisions; Stripe's events don't undo them.
        return account
    return account_change_status(
        account=account, to=target, actor=None, reason=f"Stripe subscription {subscription.id} is {status}"
    )


def customer_refresh(*, customer_id: str) -> Account | None:
    """Re-read a customer into the mirror (its default card is what the billing page shows)."""
    data = retrieve_or_none(stripe_client().v1.customers, customer_id)
    account = account_for_customer(customer_id) if data and not data.get("deleted") else None
    if account is None:
        return None
    mirror_sync(djstripe_models.Customer, data)
    return account
