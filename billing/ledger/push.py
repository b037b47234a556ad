"""Push ledger entries to Stripe as invoice items, under keys derived from the entry; re-push."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import stripe
from django.db.models import F, Q
from django.utils import timezone

from accounts.errors import Conflict
from accounts.models import User
from accounts.services import audit_record
from billing.models import LedgerEntry, LedgerState
from billing.stripe.client import idempotent, stripe_client
from billing.subscriptions.selectors import customer_for_account

logger = logging.getLogger(__name__)

# A push holds its entry this long; a crashed push is retried by the next run after it.
PUSH_LEASE = timedelta(minutes=10)

# Stripe test mode takes about 25 writes/s per endpoint: one run pushes at most this many entries, and
# the beat schedule runs often enough that a month's entries drain within the hour.
PUSH_BATCH = 500


def ledger_entries_push_due(*, now: datetime | None = None, limit: int = PUSH_BATCH) -> int:
    """Push rated entries to Stripe, oldest first; return how many were pushed. One failure stops no other."""
    now = now or timezone.now()
    due = (
        LedgerEntry.objects.filter(state=LedgerState.RATED)
        .filter(Q(push_claimed_at__isnull=True) | Q(push_claimed_at__lt=now - PUSH_LEASE))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    pushed = 0
    for entry_id in list(due):
        try:
            if ledger_entry_push(entry_id=entry_id, now=now):
                pushed += 1
        except stripe.StripeError as error:
            logger.warning("Ledger entry %s not pushed: %s", entry_id, error)
            LedgerEntry.objects.filter(pk=entry_id).update(last_error=str(error)[:2000])
    return pushed


def ledger_entry_push(*, entry_id: int, now: datetime | None = None, ignore_lease: bool = False) -> LedgerEntry | None:
    """Put one rated entry on a Stripe invoice item (and, for an annual plan, its own invoice).

    Returns the entry once pushed, or None when it was not ours to push (already pushed, or claimed by
    another push within its lease).
    """
    now = now or timezone.now()
    claim = LedgerEntry.objects.filter(pk=entry_id, state=LedgerState.RATED)
    if not ignore_lease:
        claim = claim.filter(Q(push_claimed_at__isnull=True) | Q(push_claimed_at__lt=now - PUSH_LEASE))
    if not claim.update(push_claimed_at=now, push_attempts=F("push_attempts") + 1):
        return None
    entry = LedgerEntry.objects.select_related("period", "account", "plan_price__plan").get(pk=entry_id)
    customer = customer_for_account(account=entry.account)
    if customer is None:
        raise stripe.InvalidRequestError(f"Account {entry.account_id} has no Stripe customer.", param="customer")
    client = stripe_client()
    item = _find_invoice_item(client, customer.id, entry) if entry.push_attempts > 1 else None
    if item is None:
        item = client.v1.invoice_items.create(
            params={
                "customer": customer.id,
                "subscription": entry.period.subscription_id,
                "amount": entry.amount_cents,
                "currency": entry.currency,
                "description": _description(entry),
                "period": {"start": int(entry.period.start.timestamp()), "end": int(entry.period.end.timestamp())},
                "metadata": _metadata(entry),
            },
            options=idempotent(entry.idempotency_key),
        )
    invoice_id = item.get("invoice")
    if entry.plan_price.interval == "year" and not invoice_id:
        invoice_id = _own_invoice(client, customer.id, entry)
    return _record_pushed(entry, item["id"], invoice_id or "", now)


def _record_pushed(entry: LedgerEntry, item_id: str, invoice_id: str, now: datetime) -> LedgerEntry:
    updated = LedgerEntry.objects.filter(pk=entry.pk, state=LedgerState.RATED).update(
        state=LedgerState.PUSHED,
        stripe_invoice_item_id=item_id,
        stripe_invoice_id=invoice_id,
        pushed_at=now,
        push_claimed_at=None,
        last_error="",
    )
    if not updated:
        # The paid invoice's webhook got here first (state invoiced): only fill in the item id.
        LedgerEntry.objects.filter(pk=entry.pk, stripe_invoice_item_id="").update(stripe_invoice_item_id=item_id)
    entry.refresh_from_db()
    return entry


def _metadata(entry: LedgerEntry) -> dict:
    return {
        "ledger_entry_id": str(entry.pk),
        "account_id": str(entry.account_id),
        "usage_period_id": str(entry.period_id),
        "kind": entry.kind,
    }


def _description(entry: LedgerEntry) -> str:
    parts = [
        f"{line['overage_units']:,} x {line['unit_name']}"
        for line in entry.lines
        if line["overage_units"] and line["amount_cents"]
    ]
    period = f"{entry.period.start:%d %b %Y} - {entry.period.end:%d %b %Y}"
    return f"Usage beyond your {entry.plan_price.plan.name} plan, {period}: " + ", ".join(parts)


def _find_invoice_item(client, customer_id: str, entry: LedgerEntry):
    """The invoice item an earlier push created for this entry, found by its metadata (or None)."""
    # No item for a period can predate it; the bound keeps the scan to recent items of a long-lived customer.
    since = int((entry.period.start - timedelta(days=1)).timestamp())
    items = client.v1.invoice_items.list(params={"customer": customer_id, "created": {"gte": since}, "limit": 100})
    for item in items.auto_paging_iter():
        if (item.get("metadata") or {}).get("ledger_entry_id") == str(entry.pk):
            return item
    return None


def _own_invoice(client, customer_id: str, entry: LedgerEntry) -> str:
    """Bill an annual plan's monthly overage now, on an invoice of its own (found again by metadata)."""
    invoice = None
    if entry.push_attempts > 1:
        for candidate in client.v1.invoices.list(params={"customer": customer_id, "limit": 100}).auto_paging_iter():
            if (candidate.get("metadata") or {}).get("ledger_entry_id") == str(entry.pk):
                invoice = candidate
                break
    if invoice is None:
        invoice = client.v1.invoices.create(
            params={
                "customer": customer_id,
                "subscription": entry.period.subscription_id,
                "pending_invoice_items_behavior": "include",
                "auto_advance": True,
                "description": _description(entry),
                "metadata": _metadata(entry),
            },
            options=idempotent(f"ledger:{entry.pk}:invoice"),
        )
    if invoice.get("status") == "draft":
        invoice = client.v1.invoices.finalize_invoice(
            invoice["id"], params={"auto_advance": True}, options=idempotent(f"ledger:{entry.pk}:finalize")
        )
    return invoice["id"]


def ledger_entry_repush(*, entry: LedgerEntry, actor: User) -> LedgerEntry:
    """Ops' re-push of a stuck entry: the push looks for an existing item first, so it cannot double-bill."""
    if entry.state != LedgerState.RATED:
        raise Conflict(f"Entry {entry.pk} is {entry.get_state_display().lower()}: there is nothing to re-push.")
    before = {"state": entry.state, "push_attempts": entry.push_attempts}
    # Counted as a retry even on a first push: an earlier attempt may have reached Stripe unrecorded.
    LedgerEntry.objects.filter(pk=entry.pk, push_attempts=0).update(push_attempts=1)
    pushed = ledger_entry_push(entry_id=entry.pk, ignore_lease=True)
    entry.refresh_from_db()
    audit_record(
        account=entry.account,
        actor=actor,
        action="ledger.repushed",
        target=f"ledger:{entry.pk}",
        before=before,
        after={"state": entry.state, "stripe_invoice_item_id": entry.stripe_invoice_item_id},
        reason="Re-pushed from the admin",
    )
    return pushed or entry
