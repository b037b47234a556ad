"""Re-home stranded pending items: a subscription that stops renewing never sweeps its pending items in.

A live monthly subscription's overage goes on a pending invoice item its next renewal invoices. If that
subscription then stops renewing (canceled at period end: Stripe makes no final invoice; canceled by
dunning after the last retry; replaced by another subscription), the item would stay pending forever.
So when a subscription stops renewing, each of its pushed entries whose item is still pending at Stripe
is billed final: the pending item is deleted (Stripe allows it for an item on no finalized invoice) and
the amount goes on an item without a subscription, on an invoice of its own, finalized and charged,
under keys of its own (billing/ledger/push.py `final_bill`). An item already on an invoice is left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime

import stripe
from django.utils import timezone

from accounts.models import Account
from accounts.services import audit_record
from billing.ledger.push import final_bill, subscription_stops_renewing
from billing.models import LedgerEntry, LedgerState
from billing.stripe.client import stripe_client
from billing.stripe.objects import stripe_id
from billing.subscriptions.selectors import customer_for_account, subscription_current

logger = logging.getLogger(__name__)

REHOME_REASON = "Its subscription stopped renewing: the pending item would never be invoiced."


def ledger_entries_rehome_stranded(*, account: Account, now: datetime | None = None) -> int:
    """Bill final every pushed entry of `account` whose item waits for a renewal that will not come.

    Called by the subscription sync after each change. Re-running is harmless: an entry re-homed (or
    found on an invoice) is no longer a candidate, the record is a conditional UPDATE and the writes carry
    keys. A Stripe error leaves the entry pushed for the next sync (and reconciliation reports it).
    """
    now = now or timezone.now()
    candidates = list(
        LedgerEntry.objects.filter(
            account=account, state=LedgerState.PUSHED, stripe_invoice_id="", rehomed_at__isnull=True
        ).select_related("period", "account", "plan_price__plan")
    )
    if not candidates:
        return 0
    current = subscription_current(account=account)
    rehomed = 0
    for entry in candidates:
        if not subscription_stops_renewing(subscription_id=entry.period.subscription_id, current=current):
            continue
        try:
            rehomed += _rehome(entry, now)
        except stripe.StripeError as error:
            logger.warning("Ledger entry %s not re-homed: %s", entry.pk, error)
    return rehomed


def _rehome(entry: LedgerEntry, now: datetime) -> int:
    client = stripe_client()
    old_item_id = entry.stripe_invoice_item_id
    old_item = _retrieve(client, old_item_id)
    if old_item is not None and old_item.get("invoice"):
        # A renewal (or a staff's invoice) already carries it: that invoice bills it.
        LedgerEntry.objects.filter(pk=entry.pk, state=LedgerState.PUSHED, stripe_invoice_id="").update(
            stripe_invoice_id=stripe_id(old_item["invoice"])
        )
        return 0
    customer = customer_for_account(account=entry.account)
    if customer is None:
        return 0
    item, invoice_id = final_bill(client, customer.id, entry, stale_item=old_item)
    # The invoice's paid webhook may have settled the entry already (state invoiced): record it either way.
    recorded = LedgerEntry.objects.filter(
        pk=entry.pk,
        state__in=[LedgerState.PUSHED, LedgerState.INVOICED],
        stripe_invoice_item_id=old_item_id,
        rehomed_at__isnull=True,
    ).update(stripe_invoice_item_id=item["id"], stripe_invoice_id=invoice_id, rehomed_at=now)
    if recorded:
        audit_record(
            account=entry.account,
            actor=None,
            action="ledger.rehomed",
            target=f"ledger:{entry.pk}",
            before={"stripe_invoice_item_id": old_item_id, "subscription_id": entry.period.subscription_id},
            after={"stripe_invoice_item_id": item["id"], "stripe_invoice_id": invoice_id},
            reason=REHOME_REASON,
        )
    return recorded


def _retrieve(client, item_id: str):
    """The item as Stripe holds it, or None if it is gone (deleted, or never there)."""
    if not item_id:
        return None
    try:
        item = client.v1.invoice_items.retrieve(item_id)
    except stripe.InvalidRequestError:
        return None
    return None if item.get("deleted") else item
