"""Push ledger entries to Stripe as invoice items (and invoices of their own where due), with backoff."""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timedelta

import stripe
from django.db.models import F, Q
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.errors import Conflict, DomainError
from accounts.models import User
from accounts.services import audit_record
from billing.models import LedgerEntry, LedgerState
from billing.stripe.client import idempotent, stripe_client
from billing.stripe.objects import stripe_id
from billing.subscriptions.selectors import customer_for_account, subscription_current
from plans.selectors import plan_price_by_stripe_id

logger = logging.getLogger(__name__)

# A push holds its entry this long (next_push_at moves past it at the claim); a crashed push is retried
# by the first run after it. Two minutes is far beyond one push's three Stripe calls.
PUSH_LEASE = timedelta(minutes=2)

# Stripe test mode takes about 25 writes/s per endpoint: a run pushes at most this many entries (about
# 20 s of writes), then the task queues the next run at once, so a backlog of thousands drains in minutes.
PUSH_BATCH = 500

# After a failure the next attempt waits 1, 2, 4 ... minutes, capped at an hour, plus up to a tenth more
# (spread by the entry's key, so entries failing together do not retry together). After this many
# attempts (about seven hours) the entry is `failed`: staff look at it in the admin and re-push it.
PUSH_BACKOFF_BASE = timedelta(minutes=1)
PUSH_BACKOFF_CAP = timedelta(hours=1)
MAX_PUSH_ATTEMPTS = 12


def push_backoff(*, attempts: int, key: str) -> timedelta:
    delay = min(PUSH_BACKOFF_CAP, PUSH_BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return delay + delay * (zlib.crc32(key.encode()) % 100) / 1000


def _due(now: datetime):
    return Q(state=LedgerState.RATED) & (Q(next_push_at__isnull=True) | Q(next_push_at__lte=now))


def ledger_entries_push_due(*, now: datetime | None = None, limit: int = PUSH_BATCH) -> int:
    """Push due rated entries, soonest due first; return how many were pushed. One failure stops no other.

    A failing entry waits its backoff, so it never holds back newer ones.
    """
    now = now or timezone.now()
    due = (
        LedgerEntry.objects.filter(_due(now))
        .order_by(F("next_push_at").asc(nulls_first=True), "id")
        .values_list("id", flat=True)[:limit]
    )
    pushed = 0
    for entry_id in list(due):
        try:
            if ledger_entry_push(entry_id=entry_id, now=now):
                pushed += 1
        except (stripe.StripeError, DomainError) as error:
            logger.warning("Ledger entry %s not pushed: %s", entry_id, error)
            _record_failure(entry_id, error, now)
    return pushed


def _record_failure(entry_id: int, error: Exception, now: datetime) -> None:
    entry = LedgerEntry.objects.select_related("period").filter(pk=entry_id, state=LedgerState.RATED).first()
    if entry is None:
        return
    failed = entry.push_attempts >= MAX_PUSH_ATTEMPTS
    LedgerEntry.objects.filter(pk=entry_id, state=LedgerState.RATED).update(
        state=LedgerState.FAILED if failed else LedgerState.RATED,
        next_push_at=None if failed else now + push_backoff(attempts=entry.push_attempts, key=entry.ledger_key),
        push_claimed_at=None,
        last_error=str(error)[:2000],
    )


def ledger_entry_push(*, entry_id: int, now: datetime | None = None, ignore_lease: bool = False) -> LedgerEntry | None:
    """Put one rated entry on a Stripe invoice item (and, where due, on an invoice of its own).

    Returns the entry once pushed, or None when it was not ours to push (not rated, not due, or claimed by
    another push within its lease). `ignore_lease` claims it even if not due (staff's re-push).
    """
    now = now or timezone.now()
    claim = LedgerEntry.objects.filter(pk=entry_id, state=LedgerState.RATED)
    if not ignore_lease:
        claim = claim.filter(_due(now))
    if not claim.update(push_claimed_at=now, next_push_at=now + PUSH_LEASE, push_attempts=F("push_attempts") + 1):
        return None
    entry = LedgerEntry.objects.select_related("period", "account", "plan_price__plan").get(pk=entry_id)
    return _push(entry, now)


def _push(entry: LedgerEntry, now: datetime) -> LedgerEntry:
    customer = customer_for_account(account=entry.account)
    if customer is None:
        raise DomainError(f"Account {entry.account_id} has no Stripe customer.")
    client = stripe_client()
    final, own_invoice = _billing_route(entry)
    item = invoice_item_find(client, customer.id, entry) if entry.push_attempts > 1 or entry.repush_count else None
    if final and item is not None and _pending_on_subscription(item):
        # An earlier attempt died after putting the item pending on the subscription, which has stopped
        # renewing since (and the re-home at that change found no pushed entry to move): bill it final now.
        item, invoice_id = final_bill(client, customer.id, entry, stale_item=item)
        return _record_pushed(entry, item["id"], invoice_id, now)
    if item is None:
        params = {
            "customer": customer.id,
            "amount": entry.amount_cents,
            "currency": entry.currency,
            "description": invoice_item_description(entry),
            "period": {"start": int(entry.period.start.timestamp()), "end": int(entry.period.end.timestamp())},
            "metadata": invoice_item_metadata(entry),
        }
        if not final:
            params["subscription"] = entry.period.subscription_id
        item = client.v1.invoice_items.create(params=params, options=idempotent(entry.idempotency_key("invoice_item")))
    invoice_id = item.get("invoice")
    if own_invoice and not invoice_id:
        invoice_id = own_invoice_bill(client, customer.id, entry, final=final)
    return _record_pushed(entry, item["id"], invoice_id or "", now)


def _billing_route(entry: LedgerEntry) -> tuple[bool, bool]:
    """(final, own invoice): how the entry's item reaches an invoice.

    Final: the period's subscription will not renew (canceled, set to cancel at period end: Stripe makes
    no final invoice then) or was replaced, so no renewal of it will sweep in an item: the item has no
    subscription and goes on an invoice of its own. A live annual subscription (including one that was
    monthly when the period opened) renews in months: its own invoice too. A live monthly one: a pending
    item its next renewal sweeps in (re-homed by billing/ledger/rehome.py if it then stops renewing).
    """
    subscription = djstripe_models.Subscription.objects.filter(id=entry.period.subscription_id).first()
    current = subscription_current(account=entry.account)
    if subscription is None or subscription_stops_renewing(subscription_id=subscription.id, current=current):
        return True, True
    items = (subscription.stripe_data.get("items") or {}).get("data") or []
    price_id = stripe_id(items[0].get("price")) if items else None
    price = plan_price_by_stripe_id(stripe_price_id=price_id) if price_id else None
    return False, (price or entry.plan_price).interval == "year"


def _pending_on_subscription(item) -> bool:
    parent = (item.get("parent") or {}).get("subscription_details") or {}
    return not item.get("invoice") and bool(parent.get("subscription") or item.get("subscription"))


def final_key(entry: LedgerEntry, write: str) -> str:
    """The key of a final bill's Stripe write: the ledger key's, with a segment of its own (the first push's
    key would replay the deleted pending item within Stripe's 24 hours)."""
    return f"{entry.ledger_key}:final:{write}"


def final_bill(client, customer_id: str, entry: LedgerEntry, *, stale_item) -> tuple[dict, str]:
    """Bill the entry on an item of no subscription, on an invoice of its own; returns (item, invoice id).

    `stale_item` (or None) is the entry's pending item on a subscription that will not renew: deleted first
    (Stripe allows it for an item on no finalized invoice). A crashed earlier run may have created the final
    item already: it is found by the ledger key (the stale one is gone by then). Every write has a final key.
    """
    if stale_item is not None:
        client.v1.invoice_items.delete(stale_item["id"], options=idempotent(final_key(entry, "delete")))
    item = invoice_item_find(client, customer_id, entry)
    if item is None:
        item = client.v1.invoice_items.create(
            params={
                "customer": customer_id,
                "amount": entry.amount_cents,
                "currency": entry.currency,
                "description": invoice_item_description(entry),
                "period": {"start": int(entry.period.start.timestamp()), "end": int(entry.period.end.timestamp())},
                "metadata": invoice_item_metadata(entry),
            },
            options=idempotent(final_key(entry, "invoice_item")),
        )
    invoice_id = stripe_id(item.get("invoice")) or own_invoice_bill(
        client, customer_id, entry, final=True, key=lambda write: final_key(entry, write), look_first=True
    )
    return item, invoice_id


def subscription_stops_renewing(*, subscription_id: str, current) -> bool:
    """Whether no renewal invoice of this subscription will come: canceled, ending at period end, or
    replaced by the account's current subscription (`current`). An unknown subscription: not known to stop."""
    subscription = djstripe_models.Subscription.objects.filter(id=subscription_id).first()
    if subscription is None:
        return False
    data = subscription.stripe_data
    if data.get("status") in ("canceled", "incomplete_expired") or data.get("cancel_at_period_end"):
        return True
    return current is not None and current.id != subscription.id


def _record_pushed(entry: LedgerEntry, item_id: str, invoice_id: str, now: datetime) -> LedgerEntry:
    updated = LedgerEntry.objects.filter(pk=entry.pk, state__in=[LedgerState.RATED, LedgerState.FAILED]).update(
        state=LedgerState.PUSHED,
        stripe_invoice_item_id=item_id,
        stripe_invoice_id=invoice_id,
        pushed_at=now,
        push_claimed_at=None,
        next_push_at=None,
        last_error="",
    )
    if not updated:
        # The paid invoice's webhook got here first (state invoiced): only fill in the item id.
        LedgerEntry.objects.filter(pk=entry.pk, stripe_invoice_item_id="").update(stripe_invoice_item_id=item_id)
    entry.refresh_from_db()
    return entry


def invoice_item_metadata(entry: LedgerEntry) -> dict:
    """What the oracle and reconciliation read back: the stable ledger key first, local ids for ops."""
    return {
        "ledger_key": entry.ledger_key,
        "ledger_entry_id": str(entry.pk),
        "account_id": str(entry.account_id),
        "usage_period_id": str(entry.period_id),
        "subscription_id": entry.period.subscription_id,
        "period_start": str(int(entry.period.start.timestamp())),
        "period_end": str(int(entry.period.end.timestamp())),
        "kind": entry.kind,
    }


def invoice_item_description(entry: LedgerEntry) -> str:
    parts = [
        f"{line['overage_units']:,} x {line['unit_name']}"
        for line in entry.lines
        if line["overage_units"] and line["amount_cents"]
    ]
    period = f"{entry.period.start:%d %b %Y} - {entry.period.end:%d %b %Y}"
    return f"Usage beyond your {entry.plan_price.plan.name} plan, {period}: " + ", ".join(parts)


def invoice_item_find(client, customer_id: str, entry: LedgerEntry):
    """The invoice item an earlier push created for this entry, found by its ledger key (or None)."""
    # No item for a period can predate it; the bound keeps the scan to recent items of a long-lived customer.
    since = int((entry.period.start - timedelta(days=1)).timestamp())
    items = client.v1.invoice_items.list(params={"customer": customer_id, "created": {"gte": since}, "limit": 100})
    for item in items.auto_paging_iter():
        if (item.get("metadata") or {}).get("ledger_key") == entry.ledger_key and not item.get("deleted"):
            return item
    return None


def own_invoice_bill(
    client, customer_id: str, entry: LedgerEntry, *, final: bool, key=None, look_first: bool = False
) -> str:
    """Bill the entry now, on an invoice of its own (found again by its ledger key).

    An annual plan's monthly overage rides on its subscription; a final period's (canceled or replaced
    subscription) on none, since that subscription will not invoice again.
    """
    key = key or entry.idempotency_key
    invoice = None
    if look_first or entry.push_attempts > 1 or entry.repush_count:
        for candidate in client.v1.invoices.list(params={"customer": customer_id, "limit": 100}).auto_paging_iter():
            if (candidate.get("metadata") or {}).get("ledger_key") == entry.ledger_key and candidate.get(
                "status"
            ) != "void":
                invoice = candidate
                break
    if invoice is None:
        params = {
            "customer": customer_id,
            "pending_invoice_items_behavior": "include",
            "auto_advance": True,
            "description": invoice_item_description(entry),
            "metadata": invoice_item_metadata(entry),
        }
        if not final:
            params["subscription"] = entry.period.subscription_id
        invoice = client.v1.invoices.create(params=params, options=idempotent(key("invoice")))
    if invoice.get("status") == "draft":
        invoice = client.v1.invoices.finalize_invoice(
            invoice["id"], params={"auto_advance": True}, options=idempotent(key("finalize"))
        )
    return invoice["id"]


def ledger_entry_repush(*, entry: LedgerEntry, actor: User, reason: str) -> LedgerEntry:
    """Staff's re-push of a stuck, failed or lost entry: audited, with a reason; never a double charge.

    Refused for an invoiced (or zero) entry. A pushed entry whose item Stripe still holds is left as it is.
    Otherwise the write goes under a key of its own (`...:repush:<n>`): the first push's key would replay
    a deleted item within Stripe's 24 hours. After the write, what Stripe holds is read back to confirm.
    """
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why this entry is re-pushed (the reason is audited).")
    entry.refresh_from_db()
    if entry.state not in (LedgerState.RATED, LedgerState.FAILED, LedgerState.PUSHED):
        raise Conflict(f"Entry {entry.pk} is {entry.get_state_display().lower()}: there is nothing to re-push.")
    now = timezone.now()
    if entry.state == LedgerState.RATED and entry.push_claimed_at and entry.next_push_at and entry.next_push_at > now:
        # A push holds it (or crashed holding it): a second writer now could create a second item.
        raise Conflict(f"Entry {entry.pk} is being pushed; try again after {entry.next_push_at:%H:%M:%S} UTC.")
    client = stripe_client()
    before = {"state": entry.state, "push_attempts": entry.push_attempts, "item": entry.stripe_invoice_item_id}
    if entry.state == LedgerState.PUSHED and _item_exists(client, entry.stripe_invoice_item_id):
        raise Conflict(f"Entry {entry.pk} is on Stripe's invoice item {entry.stripe_invoice_item_id}: nothing to do.")
    claimed = LedgerEntry.objects.filter(pk=entry.pk, state=entry.state).update(
        state=LedgerState.RATED,
        repush_count=F("repush_count") + 1,
        push_attempts=F("push_attempts") + 1,
        push_claimed_at=now,
        next_push_at=now + PUSH_LEASE,
        stripe_invoice_item_id="",
        stripe_invoice_id="",
    )
    if not claimed:
        raise Conflict(f"Entry {entry.pk} changed meanwhile: look again.")
    entry = LedgerEntry.objects.select_related("period", "account", "plan_price__plan").get(pk=entry.pk)
    try:
        entry = _push(entry, now)
    except (stripe.StripeError, DomainError) as error:
        _record_failure(entry.pk, error, now)
        raise
    if not _item_exists(client, entry.stripe_invoice_item_id):
        LedgerEntry.objects.filter(pk=entry.pk).update(
            state=LedgerState.FAILED, last_error="Re-pushed, but Stripe does not hold the invoice item."
        )
        raise Conflict(f"Entry {entry.pk}: Stripe does not hold the re-pushed item; it is marked failed.")
    audit_record(
        account=entry.account,
        actor=actor,
        action="ledger.repushed",
        target=f"ledger:{entry.pk}",
        before=before,
        after={"state": entry.state, "stripe_invoice_item_id": entry.stripe_invoice_item_id},
        reason=reason,
    )
    return entry


def _item_exists(client, item_id: str) -> bool:
    if not item_id:
        return False
    try:
        item = client.v1.invoice_items.retrieve(item_id)
    except stripe.InvalidRequestError:
        return False
    return not item.get("deleted")
