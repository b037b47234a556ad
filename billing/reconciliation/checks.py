"""Reconciliation checks: ledger against invoice items, plan fees, statuses, orphans; each difference recorded."""

from __future__ import annotations

import logging
from collections import Counter

import stripe
from djstripe import models as djstripe_models

from accounts.models import Account, AccountStatus
from billing.ledger.push import ledger_entry_push
from billing.models import (
    DifferenceKind,
    DunningCase,
    DunningStatus,
    LedgerEntry,
    LedgerState,
    ReconciliationDifference,
)
from billing.stripe.objects import stripe_id
from billing.subscriptions.selectors import LIVE_STATUSES, subscription_current
from billing.subscriptions.sync import ACCOUNT_STATUS_FOR_SUBSCRIPTION, subscription_refresh
from plans.models import PlanPrice

logger = logging.getLogger(__name__)


def _difference(run, account, kind, *, stripe_id="", expected="", actual="", details=None, healed=False):
    return ReconciliationDifference.objects.create(
        run=run,
        account=account,
        kind=kind,
        stripe_id=stripe_id,
        expected=str(expected),
        actual=str(actual),
        details=details or {},
        healed=healed,
    )


def check_ledger(run, client, account: Account, customer_id: str) -> None:
    entries = LedgerEntry.objects.filter(
        account=account, state__in=[LedgerState.PUSHED, LedgerState.INVOICED], pushed_at__gte=run.window_start
    )
    if not entries.exists():
        return
    items = list(client.v1.invoice_items.list(params={"customer": customer_id, "limit": 100}).auto_paging_iter())
    seen = Counter((item.get("metadata") or {}).get("ledger_entry_id") for item in items)
    by_id = {item["id"]: item for item in items}
    for entry in entries:
        item = by_id.get(entry.stripe_invoice_item_id)
        if item is None:
            healed = _repush(entry)
            _difference(
                run,
                account,
                DifferenceKind.LEDGER_LINE_MISSING,
                stripe_id=entry.stripe_invoice_item_id,
                expected=entry.amount_cents,
                actual="missing",
                details={"ledger_entry": entry.pk},
                healed=healed,
            )
            continue
        if item["amount"] != entry.amount_cents:
            _difference(
                run,
                account,
                DifferenceKind.LEDGER_AMOUNT_DIFFERS,
                stripe_id=item["id"],
                expected=entry.amount_cents,
                actual=item["amount"],
                details={"ledger_entry": entry.pk},
            )
        if seen[str(entry.pk)] > 1:
            _difference(
                run,
                account,
                DifferenceKind.LEDGER_LINE_DUPLICATED,
                stripe_id=item["id"],
                expected=1,
                actual=seen[str(entry.pk)],
                details={"ledger_entry": entry.pk},
            )


def _repush(entry: LedgerEntry) -> bool:
    """A pushed line Stripe doesn't have (deleted before invoicing): push it again, idempotently. Only for
    lines not yet invoiced — an invoiced line missing is a question for staff, never an automatic charge."""
    if entry.state != LedgerState.PUSHED:
        return False
    LedgerEntry.objects.filter(pk=entry.pk, state=LedgerState.PUSHED).update(
        state=LedgerState.RATED, stripe_invoice_item_id="", push_attempts=entry.push_attempts + 1
    )
    try:
        pushed = ledger_entry_push(entry_id=entry.pk, ignore_lease=True)
    except stripe.StripeError:
        logger.exception("Re-push of ledger entry %s failed", entry.pk)
        return False
    return bool(pushed and pushed.state == LedgerState.PUSHED)


def _line_price(line) -> str | None:
    pricing = line.get("pricing") or {}
    price = (pricing.get("price_details") or {}).get("price") or line.get("price")
    return stripe_id(price)


def _is_plan_fee(line) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or {}
    return parent.get("type") == "subscription_item_details" and not details.get("proration")


def check_plan_fees(run, account: Account, invoices: list) -> None:
    periods = Counter()
    for invoice in invoices:
        if invoice.get("status") not in ("open", "paid"):
            continue
        for line in invoice["lines"]["data"]:
            if not _is_plan_fee(line):
                continue
            if line["amount"] == 0 and invoice.get("billing_reason") == "subscription_create":
                continue  # the first invoice of a trial: nothing is due for the trial's period
            price_id = _line_price(line)
            plan_price = PlanPrice.objects.filter(stripe_price_id=price_id).first() if price_id else None
            if plan_price is None:
                continue  # a metered or legacy price: not a plan fee of the catalog
            expected = plan_price.amount_cents * (line.get("quantity") or 1)
            if line["amount"] != expected:
                _difference(
                    run,
                    account,
                    DifferenceKind.PLAN_FEE_DIFFERS,
                    stripe_id=invoice["id"],
                    expected=expected,
                    actual=line["amount"],
                    details={"price": price_id, "line": line["id"]},
                )
            periods[(price_id, line["period"]["start"])] += 1
    for (price_id, start), count in periods.items():
        if count > 1:
            _difference(
                run,
                account,
                DifferenceKind.PLAN_FEE_DUPLICATED,
                stripe_id=price_id,
                expected=1,
                actual=count,
                details={"period_start": start},
            )


def _expected_status(account: Account, stripe_status: str) -> str | None:
    expected = ACCOUNT_STATUS_FOR_SUBSCRIPTION.get(stripe_status)
    if (
        expected == AccountStatus.PAST_DUE
        and DunningCase.objects.filter(account=account, status=DunningStatus.SUSPENDED).exists()
    ):
        expected = AccountStatus.SUSPENDED
    return expected


def check_status(run, client, account: Account) -> None:
    """Compare the account's status with its subscription as Stripe has it now (not the mirror); heal by
    re-syncing, which is what the webhook would have done."""
    if account.status in (AccountStatus.BLOCKED, AccountStatus.CLOSED):
        return  # staff decisions, not Stripe's
    subscription = subscription_current(account=account)
    if subscription is None:
        return
    fresh = client.v1.subscriptions.retrieve(subscription.id)
    expected = _expected_status(account, fresh["status"])
    if not expected or account.status == expected:
        return
    actual = account.status
    subscription_refresh(subscription_id=subscription.id)
    account.refresh_from_db(fields=["status"])
    _difference(
        run,
        account,
        DifferenceKind.STATUS_DRIFT,
        stripe_id=subscription.id,
        expected=expected,
        actual=actual,
        details={"stripe_status": fresh["status"]},
        healed=account.status == expected,
    )


def check_orphan_subscriptions(run, subscriptions: list) -> None:
    known = set(djstripe_models.Customer.objects.exclude(subscriber=None).values_list("id", flat=True))
    for subscription in subscriptions:
        if subscription["status"] in ("canceled", "incomplete_expired"):
            continue
        if subscription["customer"] not in known:
            _difference(
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
            _difference(
                run,
                account,
                DifferenceKind.ACCOUNT_WITHOUT_SUBSCRIPTION,
                expected="a live subscription",
                actual=subscription.stripe_data.get("status") if subscription else "none",
            )
