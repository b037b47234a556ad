"""The reconciliation run: read Stripe's invoices and subscriptions once, then check every account.

Stripe is read in bulk (one paged list of subscriptions, one of the window's invoices, invoice items only
for accounts with ledger lines to compare) rather than object by object, and only what differs is
re-synced: after an outage with lost webhooks the run costs about one call per hundred accounts plus one
per drifted subscription, so recovery takes minutes, not the 10-20 a per-account re-read took.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account
from billing.models import ReconciliationRun
from billing.reconciliation.fees import check_plan_fees
from billing.reconciliation.ledger import check_ledger_at_stripe, check_ledger_stuck
from billing.reconciliation.subscriptions import (
    check_accounts_without_subscription,
    check_orphan_subscriptions,
    check_subscriptions,
)
from billing.stripe.client import stripe_api_key, stripe_client
from billing.subscriptions.selectors import customer_for_account
from plans.models import PlanPrice

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(days=40)


def reconciliation_run(*, window: timedelta = DEFAULT_WINDOW, progress: Callable[[int, int], None] | None = None):
    """Run one reconciliation and return its `ReconciliationRun` (differences attached, healed counted).

    It reports and re-syncs from Stripe; it never writes to Stripe (no charge, no re-push).
    """
    now = timezone.now()
    run = ReconciliationRun.objects.create(window_start=now - window)
    client = stripe_client()
    prices = {
        price.stripe_price_id: price for price in PlanPrice.objects.select_related("plan").exclude(stripe_price_id="")
    }
    invoices = _invoices_mirrored(client, since=run.window_start)
    subscriptions = [  # plain dicts, as the mirror holds them, so both compare alike
        subscription.to_dict()
        for subscription in client.v1.subscriptions.list(params={"status": "all", "limit": 100}).auto_paging_iter()
    ]
    run.invoices_checked = len(invoices)

    invoices_by_customer: dict[str, list] = {}
    for invoice in invoices:
        invoices_by_customer.setdefault(invoice["customer"], []).append(invoice)
    subscriptions_by_customer: dict[str, list] = {}
    for subscription in subscriptions:
        subscriptions_by_customer.setdefault(subscription["customer"], []).append(subscription)

    accounts = list(Account.objects.exclude(djstripe_customers=None).distinct().order_by("pk"))
    for index, account in enumerate(accounts, start=1):
        customer = customer_for_account(account=account)
        check_subscriptions(run, account, subscriptions_by_customer.get(customer.id, []), prices)
        check_ledger_at_stripe(run, client, account, customer.id, now=now)
        check_plan_fees(run, account, invoices_by_customer.get(customer.id, []), prices)
        if progress:
            progress(index, len(accounts))
    run.accounts_checked = len(accounts)

    check_ledger_stuck(run, now=now)
    check_orphan_subscriptions(run, subscriptions)
    check_accounts_without_subscription(run)
    run.differences_found = run.differences.count()
    run.differences_healed = run.differences.filter(healed=True).count()
    run.finished_at = timezone.now()
    run.save()
    return run


def _invoices_mirrored(client, *, since: datetime) -> list:
    """The window's invoices from Stripe; those the mirror lacks or holds in another state are re-synced.

    Re-syncing only what changed keeps a run after an outage short: an invoice the mirror already has as
    Stripe has it costs nothing.
    """
    found = list(
        client.v1.invoices.list(params={"created": {"gte": int(since.timestamp())}, "limit": 100}).auto_paging_iter()
    )
    mirrored = dict(
        djstripe_models.Invoice.objects.filter(id__in=[invoice["id"] for invoice in found]).values_list(
            "id", "stripe_data"
        )
    )
    for invoice in found:
        held = mirrored.get(invoice["id"])
        if held and (held.get("status"), held.get("amount_paid")) == (
            invoice.get("status"),
            invoice.get("amount_paid"),
        ):
            continue
        try:
            djstripe_models.Invoice.sync_from_stripe_data(invoice, api_key=stripe_api_key())
        except Exception:  # a mirror that cannot sync one object must not stop the whole reconciliation
            logger.exception("Could not mirror invoice %s", invoice["id"])
    return found
