"""The ledger: closed periods rated into entries, entries pushed to Stripe, paid invoices settling them.

Exactly once, step by step:
- Rating claims periods with a conditional UPDATE (open → rated) in the same transaction that writes
  their entries; a crash rolls both back. The entry is unique on (account, period, kind).
- A push claims the entry for a lease (conditional UPDATE, attempts + 1), creates the Stripe invoice item
  with an idempotency key derived from the entry and the entry's id in its metadata, then records it.
  A crash after Stripe answered leaves the entry `rated` with attempts > 0: the next push first looks
  for an invoice item carrying the entry's id (Stripe forgets idempotency keys after 24 hours), and only
  creates one when there is none.
- Where the overage goes: a monthly plan's overage is an invoice item on the subscription, so it rides
  on the next renewal invoice (the period's own renewal was finalized before the finality window ended).
  An annual plan's monthly overage cannot wait up to a year: it gets its own invoice, created and
  finalized at once (Stripe charges it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import stripe
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.errors import Conflict
from accounts.models import User
from accounts.services import audit_record
from billing import selectors
from billing.models import LedgerEntry, LedgerKind, LedgerState, UsagePeriod, UsagePeriodState, UsageRollup
from billing.rating import metered_entitlements, usage_rate
from billing.stripe.client import idempotent, stripe_client
from billing.usage import finality_window
from plans.models import PlanPrice

logger = logging.getLogger(__name__)

# One chunk is one transaction: claim up to this many periods, read their rollups, write their entries.
# 1,000 keeps each transaction around a tenth of a second (so a late event waiting on a period's lock
# waits little, and a crash redoes little) while 100,000 periods still take only 100 round trips.
RATE_CHUNK_SIZE = 1000
# A push holds its entry this long; a crashed push is retried by the next run after it.
PUSH_LEASE = timedelta(minutes=10)
# Stripe test mode takes about 25 writes/s per endpoint: one run pushes at most this many entries, and
# the beat schedule runs often enough that a month's entries drain within the hour.
PUSH_BATCH = 500


# --- rating -----------------------------------------------------------------------------------------------


def usage_periods_rate_closed(*, now: datetime | None = None, chunk_size: int = RATE_CHUNK_SIZE) -> int:
    """Rate every period whose finality window has passed; return how many this call rated.

    Two workers running this at once take disjoint chunks (FOR UPDATE SKIP LOCKED inside the claim),
    and a period is only rated while it is still open, so none is rated twice.
    """
    now = now or timezone.now()
    cutoff = now - finality_window()
    plans: dict[int, tuple[PlanPrice, dict]] = {}
    total = 0
    while True:
        rated = _rate_chunk(now=now, cutoff=cutoff, chunk_size=chunk_size, plans=plans)
        total += rated
        if rated < chunk_size:
            return total


def _rate_chunk(*, now, cutoff, chunk_size, plans) -> int:
    table = UsagePeriod._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The claim: open → rated, only for rows still open. Rows locked elsewhere (an ingest holding
            # a period FOR SHARE, another worker's chunk) are skipped and picked up by a later run.
            cursor.execute(
                f"""
                UPDATE {table} SET state = %s, rated_at = %s
                WHERE id IN (
                    SELECT id FROM {table} WHERE state = %s AND "end" <= %s
                    ORDER BY "end", id LIMIT %s FOR UPDATE SKIP LOCKED
                ) AND state = %s
                RETURNING id, account_id, plan_price_id
                """,  # noqa: S608
                [UsagePeriodState.RATED, now, UsagePeriodState.OPEN, cutoff, chunk_size, UsagePeriodState.OPEN],
            )
            claimed = cursor.fetchall()
        if not claimed:
            return 0
        used: dict[int, dict[str, int]] = {}
        for period_id, metric, units in UsageRollup.objects.filter(
            period_id__in=[row[0] for row in claimed]
        ).values_list("period_id", "metric", "used"):
            used.setdefault(period_id, {})[metric] = units
        entries = []
        for period_id, account_id, plan_price_id in claimed:
            if plan_price_id not in plans:
                plan_price = PlanPrice.objects.select_related("plan").get(pk=plan_price_id)
                plans[plan_price_id] = (plan_price, metered_entitlements(plan_price=plan_price))
            plan_price, metered = plans[plan_price_id]
            rating = usage_rate(plan_price=plan_price, metered=metered, used=used.get(period_id, {}))
            entries.append(
                LedgerEntry(
                    account_id=account_id,
                    period_id=period_id,
                    kind=LedgerKind.USAGE_OVERAGE,
                    state=LedgerState.RATED if rating.amount_cents else LedgerState.NOTHING_DUE,
                    plan_price_id=plan_price_id,
                    currency=rating.currency,
                    amount_cents=rating.amount_cents,
                    lines=rating.lines_as_json(),
                    created_at=now,
                )
            )
        # The unique (account, period, kind) is the last word: an entry that somehow exists stays as it was.
        LedgerEntry.objects.bulk_create(entries, ignore_conflicts=True, batch_size=chunk_size)
    return len(claimed)


# --- pushing to Stripe ----------------------------------------------------------------------------------------


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
    customer = selectors.customer_for_account(account=entry.account)
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


# --- paid invoices ------------------------------------------------------------------------------------------------


def ledger_entries_mark_invoiced(*, invoice_id: str) -> int:
    """An invoice was paid: the ledger entries it carries become invoiced. Re-reads the invoice from Stripe."""
    client = stripe_client()
    invoice = client.v1.invoices.retrieve(invoice_id)
    if invoice.get("status") != "paid":
        return 0
    by_entry: dict[int, str] = {}
    for line in client.v1.invoices.line_items.list(invoice_id, params={"limit": 100}).auto_paging_iter():
        entry_id = (line.get("metadata") or {}).get("ledger_entry_id")
        if entry_id and str(entry_id).isdigit():
            parent = line.get("parent") or {}
            details = parent.get("invoice_item_details") or {}
            by_entry[int(entry_id)] = details.get("invoice_item") or line.get("invoice_item") or ""
    marked = 0
    now = timezone.now()
    for entry_id, item_id in by_entry.items():
        with transaction.atomic():
            entry = (
                LedgerEntry.objects.select_for_update()
                .filter(pk=entry_id, state__in=[LedgerState.RATED, LedgerState.PUSHED])
                .first()
            )
            if entry is None:
                continue
            entry.state = LedgerState.INVOICED
            entry.stripe_invoice_id = invoice_id
            entry.stripe_invoice_item_id = entry.stripe_invoice_item_id or item_id
            entry.invoiced_at = now
            entry.push_claimed_at = None
            entry.save(
                update_fields=["state", "stripe_invoice_id", "stripe_invoice_item_id", "invoiced_at", "push_claimed_at"]
            )
            marked += 1
    return marked
