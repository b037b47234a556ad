"""Reads of the ledger that other rooms need (reconciliation reports failed pushes as differences)."""

from __future__ import annotations

from django.db.models import QuerySet

from billing.models import LedgerEntry, LedgerState


def ledger_entries_failed(*, account_id: int | None = None) -> QuerySet[LedgerEntry]:
    """Entries whose push gave up after MAX_PUSH_ATTEMPTS: billed nowhere until staff re-push them."""
    entries = LedgerEntry.objects.filter(state=LedgerState.FAILED).select_related("period")
    return entries.filter(account_id=account_id) if account_id is not None else entries
