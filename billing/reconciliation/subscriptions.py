"""Subscription checks: every field billing depends on, Stripe's subscription against our mirror and account.

Billing reads the mirror (dj-stripe) and the account's plan: a lost webhook leaves an account on its old
plan, interval or seat count, with a stale cancel flag or trial end, and usage then opens periods on the
wrong terms. Each of those is compared with Stripe's subscription as listed now; a difference is healed by
re-syncing the subscription from Stripe, which is what the lost webhook would have done (safe: it only
reads Stripe), and is counted healed only if the mirror and the account agree with Stripe afterwards.
"""

from __future__ import annotations

from djstripe import models as djstripe_models

from accounts.models import Account, AccountStatus
from billing.models import DifferenceKind
from billing.reconciliation.record import difference_record
from billing.stripe.objects import stripe_id, stripe_time
from billing.subscriptions.selectors import LIVE_STATUSES, subscription_current
from billing.subscriptions.sync import (
    account_status_for_subscription,
    account_sync_status_from_subscription,
    subscription_refresh,
)

KIND_FOR_FIELD = {
    "plan": DifferenceKind.PLAN_DRIFT,
    "interval": DifferenceKind.INTERVAL_DRIFT,
    "quantity": DifferenceKind.QUANTITY_DRIFT,
    "cancel_at_period_end": DifferenceKind.CANCEL_FLAG_DRIFT,
    "trial_end": DifferenceKind.TRIAL_END_DRIFT,
    "status": DifferenceKind.SUBSCRIPTION_STATUS_DRIFT,
}

TERMINAL = ("canceled", "incomplete_expired")


def subscription_terms(data, prices: dict) -> dict:
    """The fields of a subscription billing depends on, from Stripe's object or the mirror's copy of it.

    `prices` maps Stripe price ids to catalog prices (read once per run). A price outside the catalog is
    named by its id, with the interval Stripe gives it.
    """
    items = (data.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    price = first.get("price") or {}
    price_id = stripe_id(price)
    plan_price = prices.get(price_id)
    recurring = (price.get("recurring") or {}) if not isinstance(price, str) else {}
    trial_end = stripe_time(data.get("trial_end"))
    return {
        "plan": plan_price.plan.code if plan_price else price_id,
        "interval": plan_price.interval if plan_price else recurring.get("interval"),
        "quantity": first.get("quantity") or 1,
        "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
        "trial_end": trial_end.isoformat() if trial_end else None,
        "status": data.get("status") or "",
    }


def _mirrored_terms(subscription_id: str, prices: dict) -> dict | None:
    mirror = djstripe_models.Subscription.objects.filter(id=subscription_id).only("stripe_data").first()
    return subscription_terms(mirror.stripe_data, prices) if mirror else None


def _drifted_fields(stripe_terms: dict, mirrored: dict | None) -> dict:
    if mirrored is None:
        return {}
    return {field: (value, mirrored[field]) for field, value in stripe_terms.items() if mirrored[field] != value}


def _status_drift(account: Account, by_id: dict) -> tuple[str, str, str] | None:
    """(subscription id, expected, actual) when the account's status is not what its subscription says."""
    if account.status in (AccountStatus.BLOCKED, AccountStatus.CLOSED):
        return None  # staff decisions, not Stripe's
    current = subscription_current(account=account)
    if current is None or current.id not in by_id:
        return None
    expected = account_status_for_subscription(account=account, stripe_status=by_id[current.id]["status"])
    if not expected or account.status == expected:
        return None
    return current.id, expected, account.status


def check_subscriptions(run, account: Account, stripe_subscriptions: list, prices: dict) -> None:
    """Compare each of the account's Stripe subscriptions with the mirror, and its status; heal by re-sync."""
    by_id = {subscription["id"]: subscription for subscription in stripe_subscriptions}
    found = []  # (subscription id, kind, expected, actual, field)
    for subscription_id, data in by_id.items():
        terms = subscription_terms(data, prices)
        mirrored = _mirrored_terms(subscription_id, prices)
        if mirrored is None:
            if terms["status"] not in TERMINAL:
                found.append((subscription_id, DifferenceKind.SUBSCRIPTION_NOT_MIRRORED, terms["status"], "none", None))
            continue
        for field, (expected, actual) in _drifted_fields(terms, mirrored).items():
            found.append((subscription_id, KIND_FOR_FIELD[field], expected, actual, field))
    status = _status_drift(account, by_id)
    if status:
        found.append((status[0], DifferenceKind.STATUS_DRIFT, status[1], status[2], None))
    if not found:
        current = subscription_current(account=account)
        if current is not None and current.id in by_id:  # only a mirror Stripe has just confirmed
            _check_account_plan(run, account, current.id)
        return

    for subscription_id in dict.fromkeys(row[0] for row in found):
        subscription_refresh(subscription_id=subscription_id)
    account.refresh_from_db()
    still_status = _status_drift(account, by_id)
    for subscription_id, kind, expected, actual, field in found:
        if kind == DifferenceKind.STATUS_DRIFT:
            healed = still_status is None
        else:
            mirrored = _mirrored_terms(subscription_id, prices)
            terms = subscription_terms(by_id[subscription_id], prices)
            healed = mirrored is not None and (field is None or mirrored[field] == terms[field])
        difference_record(
            run,
            account,
            kind,
            stripe_id=subscription_id,
            expected=expected,
            actual=actual,
            details={"field": field} if field else {},
            healed=healed,
        )


def _check_account_plan(run, account: Account, subscription_id: str) -> None:
    """The mirror agrees with Stripe; does the account's plan follow it? (a handler that failed after the sync)

    Asked of the sync itself, so the rule of which plan is in force (a scheduled downgrade keeps the paid-for
    plan until its boundary) stays in one place: it changes the account only if the account had drifted.
    """
    before = account.plan.code if account.plan_id else None
    synced = account_sync_status_from_subscription(account=account)
    synced.refresh_from_db(fields=["plan"])
    after = synced.plan.code if synced.plan_id else None
    if after != before:
        difference_record(
            run,
            account,
            DifferenceKind.ACCOUNT_PLAN_DRIFT,
            stripe_id=subscription_id,
            expected=after,
            actual=before,
            healed=True,
        )


def check_orphan_subscriptions(run, subscriptions: list) -> None:
    known = set(djstripe_models.Customer.objects.exclude(subscriber=None).values_list("id", flat=True))
    for subscription in subscriptions:
        if subscription["status"] in TERMINAL:
            continue
        if subscription["customer"] not in known:
            difference_record(
                run,
                None,
                DifferenceKind.SUBSCRIPTION_WITHOUT_ACCOUNT,
                stripe_id=subscription["id"],
                details={"customer": subscription["customer"], "status": subscription["status"]},
            )


def check_accounts_without_subscription(run) -> None:
    for account in Account.objects.filter(status__in=[AccountStatus.ACTIVE, AccountStatus.PAST_DUE]):
        subscription = subscription_current(account=account)
        if subscription is None or subscription.stripe_data.get("status") not in LIVE_STATUSES:
            difference_record(
                run,
                account,
                DifferenceKind.ACCOUNT_WITHOUT_SUBSCRIPTION,
                expected="a live subscription",
                actual=subscription.stripe_data.get("status") if subscription else "none",
            )
