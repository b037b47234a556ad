"""Rate closed usage periods into ledger entries, in chunks, exactly once."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from billing.models import LedgerEntry, LedgerKind, LedgerState, UsagePeriod, UsagePeriodState, UsageRollup
from billing.usage.periods import finality_window
from billing.usage.rating import metered_entitlements, metered_terms, usage_rate_terms
from plans.models import PlanPrice

logger = logging.getLogger(__name__)

# One chunk is one transaction: claim up to this many periods, read their rollups, write their entries.
# 1,000 keeps each transaction around a tenth of a second (so a late event waiting on a period's lock
# waits little, and a crash redoes little) while 100,000 periods still take only 100 round trips.
RATE_CHUNK_SIZE = 1000


def usage_periods_rate_closed(*, now: datetime | None = None, chunk_size: int = RATE_CHUNK_SIZE) -> int:
    """Rate every period whose finality window has passed; return how many this call rated.

    Two workers running this at once take disjoint chunks (FOR UPDATE SKIP LOCKED inside the claim),
    and a period is only rated while it is still open, so none is rated twice.
    """
    now = now or timezone.now()
    cutoff = now - finality_window()
    plans: dict[int, dict] = {}
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
                RETURNING id, account_id, plan_price_id, terms, trial, subscription_id
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
        # A subscription that expired unpaid never started: its usage is counted, like a trial's, and not billed.
        never_started = set(
            djstripe_models.Subscription.objects.filter(
                id__in={row[5] for row in claimed}, stripe_data__status="incomplete_expired"
            ).values_list("id", flat=True)
        )
        entries = []
        for period_id, account_id, plan_price_id, terms, trial, subscription_id in claimed:
            if isinstance(terms, str):
                terms = json.loads(terms)  # a raw cursor may hand jsonb back as text
            if not terms:  # a period stored before terms were snapshot: its plan's terms today
                if plan_price_id not in plans:
                    plan_price = PlanPrice.objects.get(pk=plan_price_id)
                    plans[plan_price_id] = metered_terms(
                        plan_price=plan_price, metered=metered_entitlements(plan_price=plan_price)
                    )
                terms = plans[plan_price_id]
            rating = usage_rate_terms(
                terms=terms, used=used.get(period_id, {}), trial=trial or subscription_id in never_started
            )
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
