"""Rating benchmark: the closed periods of N subscriptions rated and written to the ledger (no Stripe).

    python -m bench.rating [--subscriptions 100000]

Generates N accounts, one closed monthly period each (plans and intervals in turn) with rollups for
tickets and automated resolutions, then times `ledger_rate.usage_periods_rate_closed` (claims in chunks,
rates, writes one LedgerEntry per period) against one SQL aggregate computing the same totals, and checks
that both agree to the cent. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from bench.common import django_setup, fresh_database, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    args = parser.parse_args()
    n = args.subscriptions

    fresh_database()
    django_setup()
    from django.db import connection

    from accounts.models import Account
    from billing.ledger import rate as ledger_rate
    from billing.ledger.rate import RATE_CHUNK_SIZE
    from billing.models import LedgerEntry, UsagePeriod, UsageRollup
    from plans.models import PlanPrice

    started = time.perf_counter()
    now = datetime.now(tz=UTC)
    Account.objects.bulk_create(
        [Account(name=f"Rate {i}", slug=f"rate-{i}", billing_email=f"r{i}@bench.example") for i in range(n)],
        batch_size=5000,
    )
    prices = list(PlanPrice.objects.filter(plan__is_public=True, currency="usd").order_by("plan__rank", "interval"))
    account_ids = list(Account.objects.order_by("id").values_list("id", flat=True))
    end = now - timedelta(days=4)
    UsagePeriod.objects.bulk_create(
        [
            UsagePeriod(
                account_id=account_id,
                start=end - timedelta(days=30),
                end=end,
                subscription_id=f"sub_rate{i}",
                plan_price=prices[i % len(prices)],
            )
            for i, account_id in enumerate(account_ids)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        # Deterministic usage from each period's id: 0-8,191 tickets and 0-2,047 automated resolutions.
        for metric, mask in (("tickets", 8191), ("automated_resolutions", 2047)):
            cursor.execute(
                f"INSERT INTO {UsageRollup._meta.db_table} (period_id, metric, used, updated_at) "
                f"SELECT id, %s, hashtext(id::text || %s) & %s, now() FROM {UsagePeriod._meta.db_table}",
                [metric, metric, mask],
            )
        cursor.execute("ANALYZE")
    setup_seconds = time.perf_counter() - started

    started = time.perf_counter()
    rated = ledger_rate.usage_periods_rate_closed(now=now)
    rate_seconds = time.perf_counter() - started
    entries = LedgerEntry.objects.count()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE amount_cents > 0), sum(amount_cents) FROM {LedgerEntry._meta.db_table}"
        )
        ledger_charged, ledger_total = cursor.fetchone()
        started = time.perf_counter()
        cursor.execute(
            f"""
            SELECT count(*) FILTER (WHERE amount > 0), sum(amount) FROM (
                SELECT p.id, COALESCE(sum(GREATEST(r.used - e.included_units, 0) * e.overage_cents), 0) AS amount
                FROM {UsagePeriod._meta.db_table} p
                JOIN plans_planprice pp ON pp.id = p.plan_price_id
                LEFT JOIN plans_entitlement e ON e.plan_id = pp.plan_id AND e.kind = 'metered'
                LEFT JOIN {UsageRollup._meta.db_table} r ON r.period_id = p.id AND r.metric = e.feature
                GROUP BY p.id
            ) per_period
            """
        )
        sql_charged, sql_total = cursor.fetchone()
        sql_seconds = time.perf_counter() - started
    assert rated == entries == n, (rated, entries, n)
    assert (ledger_charged, ledger_total) == (sql_charged, sql_total), (
        ledger_charged,
        ledger_total,
        sql_charged,
        sql_total,
    )
    print(
        table(
            f"Rating + ledger for {n:,} closed periods (chunks of {RATE_CHUNK_SIZE:,}), {os.cpu_count()} CPUs; "
            f"set-up {setup_seconds:.1f} s not counted",
            ["run", "seconds", "periods/s", "entries written", "charged periods", "total cents"],
            [
                [
                    "usage_periods_rate_closed",
                    f"{rate_seconds:.2f}",
                    f"{n / rate_seconds:,.0f}",
                    f"{entries:,}",
                    f"{ledger_charged:,}",
                    f"{ledger_total:,}",
                ],
                [
                    "one SQL aggregate",
                    f"{sql_seconds:.2f}",
                    f"{n / sql_seconds:,.0f}",
                    "-",
                    f"{sql_charged:,}",
                    f"{sql_total:,}",
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
