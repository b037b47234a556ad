"""Ledger checks: our entries against Stripe's invoice items, and entries stuck on their way there.

Reconciliation reports here and never charges: a line missing at Stripe (ops may have deleted it to waive
it) is a question for staff, whose re-push is an explicit, audited action with a reason (the ledger's
`ledger_entry_repush`), never something this module calls.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.db.models import Q

from accounts.models import Account
from billing.models import DifferenceKind, LedgerEntry, LedgerState
from billing.reconciliation.record import difference_record

# A monthly plan's overage item waits at Stripe for the customer's next invoice: a cycle (31 days) after
# its period closed at most, plus slack for the finality window and a late renewal. Older and still not
# on an invoice, Stripe will not draw it in by itself.
PUSHED_NOT_INVOICED_AFTER = timedelta(days=35)

# The push job runs every few minutes and retries with backoff: an entry rated this long ago and still not
# at Stripe is stuck (a keeps-failing push, or a push job that is not running).
RATED_NOT_PUSHED_AFTER = timedelta(hours=6)

# The ledger helper adds this state for pushes that keep failing; read as a string so this check works
# before and after that change lands.
FAILED_STATE = "failed"


def ledger_entries_to_compare(*, account: Account, window_start: datetime):
    """Entries Stripe should hold as an invoice item: every pushed one, and those invoiced in the window."""
    return LedgerEntry.objects.filter(account=account).filter(
        Q(state=LedgerState.PUSHED) | Q(state=LedgerState.INVOICED, pushed_at__gte=window_start)
    )


def _item_key(item) -> str:
    metadata = item.get("metadata") or {}
    return metadata.get("ledger_key") or f"id:{metadata.get('ledger_entry_id')}"


def check_ledger_at_stripe(run, client, account: Account, customer_id: str, *, now: datetime) -> None:
    """Each entry's invoice item: present, for the same amount, once, and on an invoice in time."""
    entries = list(ledger_entries_to_compare(account=account, window_start=run.window_start))
    if not entries:
        return  # no Stripe call for an account with nothing to compare
    items = list(client.v1.invoice_items.list(params={"customer": customer_id, "limit": 100}).auto_paging_iter())
    # Counted by the ledger key (what the write means at Stripe); items pushed before it existed carry only the id.
    seen = Counter(_item_key(item) for item in items)
    by_id = {item["id"]: item for item in items}
    for entry in entries:
        details = {"ledger_entry": entry.pk, "period": entry.period_id}
        item = by_id.get(entry.stripe_invoice_item_id)
        if item is None:
            difference_record(
                run,
                account,
                DifferenceKind.LEDGER_LINE_MISSING,
                stripe_id=entry.stripe_invoice_item_id,
                expected=entry.amount_cents,
                actual="missing",
                details={**details, "action": "staff may re-push the entry, with a reason, from its ledger page"},
            )
            continue
        if item["amount"] != entry.amount_cents:
            difference_record(
                run,
                account,
                DifferenceKind.LEDGER_AMOUNT_DIFFERS,
                stripe_id=item["id"],
                expected=entry.amount_cents,
                actual=item["amount"],
                details=details,
            )
        if seen[entry.ledger_key] + seen[f"id:{entry.pk}"] > 1:
            difference_record(
                run,
                account,
                DifferenceKind.LEDGER_LINE_DUPLICATED,
                stripe_id=item["id"],
                expected=1,
                actual=seen[str(entry.pk)],
                details=details,
            )
        if (
            entry.state == LedgerState.PUSHED
            and not item.get("invoice")
            and entry.pushed_at
            and entry.pushed_at < now - PUSHED_NOT_INVOICED_AFTER
        ):
            difference_record(
                run,
                account,
                DifferenceKind.LEDGER_NOT_INVOICED,
                stripe_id=item["id"],
                expected=f"on an invoice within {PUSHED_NOT_INVOICED_AFTER.days} days",
                actual=f"pending since {entry.pushed_at:%Y-%m-%d}",
                details=details,
            )


def check_ledger_stuck(run, *, now: datetime) -> None:
    """Entries that never reached Stripe: pushes given up (failed), or rated long ago and still not pushed.

    No Stripe call: these are read from our ledger alone, for every account in one query each.
    """
    for entry in LedgerEntry.objects.filter(state=FAILED_STATE).select_related("account"):
        difference_record(
            run,
            entry.account,
            DifferenceKind.LEDGER_PUSH_FAILED,
            expected="pushed",
            actual=f"failed after {entry.push_attempts} attempt(s)",
            details={"ledger_entry": entry.pk, "period": entry.period_id, "last_error": entry.last_error[:500]},
        )
    stuck = LedgerEntry.objects.filter(state=LedgerState.RATED, created_at__lt=now - RATED_NOT_PUSHED_AFTER)
    for entry in stuck.select_related("account"):
        difference_record(
            run,
            entry.account,
            DifferenceKind.LEDGER_NOT_PUSHED,
            expected=f"pushed within {int(RATED_NOT_PUSHED_AFTER.total_seconds() // 3600)} hours",
            actual=f"rated since {entry.created_at:%Y-%m-%d %H:%M}",
            details={"ledger_entry": entry.pk, "period": entry.period_id, "last_error": entry.last_error[:500]},
        )
