"""The nightly reconciliation run: refresh Stripe's invoices and subscriptions, then check every account."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account
from billing.models import (
    ReconciliationRun,
)
from billing.reconciliation.checks import (
    check_accounts_without_subscription,
    check_ledger,
    check_orphan_subscriptions,
    check_plan_fees,
    check_status,
)
from billing.stripe.client import stripe_api_key, stripe_client
from billing.subscriptions.selectors import customer_for_account

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(days=40)


def reconciliation_run(*, window: timedelta = DEFAULT_WINDOW, progress: Callable[[int, int], None] | None = None):
    """Run one reconciliation and return its `ReconciliationRun` (differences attached)."""
    now = timezone.now()
    run = ReconciliationRun.objects.create(window_start=now - window)
    client = stripe_client()
    invoices = _refresh_invoices(client, since=run.window_start)
    subscriptions = _refresh_subscriptions(client)
    run.invoices_checked = len(invoices)

    by_customer: dict[str, list] = {}
    for invoice in invoices:
        by_customer.setdefault(invoice["customer"], []).append(invoice)
    accounts = list(Account.objects.exclude(djstripe_customers=None).distinct().order_by("pk"))
    for index, account in enumerate(accounts, start=1):
        customer = customer_for_account(account=account)
        check_ledger(run, client, account, customer.id)
        check_plan_fees(run, account, by_customer.get(customer.id, []))
        check_status(run, client, account)
        if progress:
            progress(index, len(accounts))
    run.accounts_checked = len(accounts)

    check_orphan_subscriptions(run, subscriptions)
    check_accounts_without_subscription(run)
    run.differences_found = run.differences.count()
    run.differences_healed = run.differences.filter(healed=True).count()
    run.finished_at = timezone.now()
    run.save()
    return run


def _refresh_invoices(client, *, since: datetime) -> list:
    found = []
    params = {"created": {"gte": int(since.timestamp())}, "limit": 100}
    for invoice in client.v1.invoices.list(params=params).auto_paging_iter():
        found.append(invoice)
        try:
            djstripe_models.Invoice.sync_from_stripe_data(invoice, api_key=stripe_api_key())
        except Exception:  # a mirror that cannot sync one object must not stop the whole reconciliation
            logger.exception("Could not mirror invoice %s", invoice["id"])
    return found


def _refresh_subscriptions(client) -> list:
    found = list(client.v1.subscriptions.list(params={"status": "all", "limit": 100}).auto_paging_iter())
    return found
