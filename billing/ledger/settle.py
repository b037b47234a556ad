"""Settle: mark ledger entries invoiced when their Stripe invoice is paid."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from billing.models import LedgerEntry, LedgerState
from billing.stripe.client import retrieve_or_none, stripe_client

logger = logging.getLogger(__name__)


def ledger_entries_mark_invoiced(*, invoice_id: str) -> int:
    """An invoice was paid: the ledger entries it carries become invoiced. Re-reads the invoice from Stripe (the
    read the event's other handlers share)."""
    invoice = retrieve_or_none(stripe_client().v1.invoices, invoice_id)
    if invoice is None or invoice.get("status") != "paid":
        return 0
    by_entry: dict[int, str] = {}
    for line in _lines(invoice):
        entry_id = _entry_for(line.get("metadata") or {})
        if entry_id is not None:
            parent = line.get("parent") or {}
            details = parent.get("invoice_item_details") or {}
            by_entry[entry_id] = details.get("invoice_item") or line.get("invoice_item") or ""
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


def _lines(invoice):
    """The invoice's lines: the first page comes with the invoice; only a longer invoice costs more reads."""
    lines = invoice.get("lines") or {}
    if not lines.get("has_more"):
        return lines.get("data") or []
    return stripe_client().v1.invoices.line_items.list(invoice["id"], params={"limit": 100}).auto_paging_iter()


def _entry_for(metadata: dict) -> int | None:
    """The ledger entry a line carries: by its ledger key (the same in every database sharing the Stripe
    account); by the local id only for lines pushed before keys were stable."""
    key = metadata.get("ledger_key")
    if key:
        kind, _, rest = str(key).partition(":")
        subscription_id, _, start = rest.rpartition(":")
        if not start.isdigit():
            return None
        return (
            LedgerEntry.objects.filter(
                kind=kind,
                period__subscription_id=subscription_id,
                period__start=datetime.fromtimestamp(int(start), tz=UTC),
            )
            .values_list("pk", flat=True)
            .first()
        )
    entry_id = metadata.get("ledger_entry_id")
    return int(entry_id) if entry_id and str(entry_id).isdigit() else None
