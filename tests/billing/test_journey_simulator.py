"""The model-based journey simulator: a seeded population lives on a sandbox test clock, and the books must balance.

Real parts: one sandbox test clock our clock (time-machine) follows, webhooks reaching the live app, the beat jobs
run at every moment beat would run them (each billing boundary's last half hour, two hours after it, after its
finality window, and after each month's steps). A seeded RNG picks each merchant's step of the month from the
kinds the issue lists (tests/billing/journey/steps.py), weighted, each under its precondition.

After every step the due jobs run twice: the second run must bill nothing more. At the end, for every account:
- Stripe's finalized invoices equal the independent oracle (tests/billing/oracle.py) line by line, to the cent;
- every rated ledger entry is on exactly one finalized invoice;
- no two usage periods of an account overlap; reconciliation reports zero drift;
- the account's status matches its subscription's.

`TOLLBOOTH_SIM_MERCHANTS` (CI: 4) and `TOLLBOOTH_SIM_MONTHS` (14) size it; `TOLLBOOTH_SIM_SEED` replays a seed
(printed at the start and in every failure); `TOLLBOOTH_SIM_STEPS_OFF` turns step kinds off; `bench/journey.py`
runs a large population and prints the table.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from djstripe import models as djstripe_models

from billing.models import LedgerEntry, LedgerState
from billing.reconciliation.run import reconciliation_run
from billing.stripe.endpoints import webhook_endpoint_ensure
from plans.models import Plan
from tests.billing import oracle
from tests.billing.journey import books, steps
from tests.billing.journey.world import World, catalog_terms

MERCHANTS = int(os.environ.get("TOLLBOOTH_SIM_MERCHANTS", "4"))
MONTHS = int(os.environ.get("TOLLBOOTH_SIM_MONTHS", "14"))
SEED = int(os.environ.get("TOLLBOOTH_SIM_SEED") or random.SystemRandom().randrange(10**6))
REPORT = os.environ.get("TOLLBOOTH_SIM_REPORT", "")
ACTION_DAY = timedelta(days=10)  # each month's steps happen ten days after the month's start
STEPS_PER_MONTH = 2  # two steps a month: every kind comes up a few times even in CI's small population
LATE = timedelta(hours=1)  # a late event occurred this long before the boundary it arrives after


@pytest.mark.django_db(transaction=True)
def test_a_seeded_population_lives_its_months_and_the_books_equal_the_oracle(
    sandbox, stripe_client, live_server, catalog
):
    print(f"\njourney simulator: seed {SEED} (replay with TOLLBOOTH_SIM_SEED={SEED})")
    started = time.monotonic()
    rng = random.Random(SEED)
    Plan.objects.filter(code=steps.SEAT_PLAN).update(per_seat=True)  # seat changes reach Stripe's quantity
    call_command("sync_plans", stdout=StringIO())
    endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(djstripe_tolerance=0)
    start = datetime.now(tz=UTC).replace(microsecond=0)
    prices, terms = catalog_terms(start)
    terms_catalog = oracle.Catalog(prices=prices, terms=[terms])
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(start.timestamp())})
    finality = timedelta(hours=settings.TOLLBOOTH_USAGE_FINALITY_HOURS)

    merchants: list[steps.Merchant] = []
    with time_machine.travel(start, tick=False) as traveller:
        world = World(sandbox, stripe_client, clock.id, traveller, endpoint.id, settings.TOLLBOOTH_USAGE_FINALITY_HOURS)
        signup_month = [0 if n < max(1, MERCHANTS * 7 // 10) else rng.randint(1, 3) for n in range(MERCHANTS)]
        for n in range(MERCHANTS):
            if signup_month[n] == 0:
                merchants.append(steps.sign_up(n, rng, stripe_client, clock.id))
        world.flush()
        world.run_due_jobs("signups")

        for month in range(MONTHS):
            action_at = steps_add_months(start, month) + ACTION_DAY
            _beat_until(world, merchants, rng, action_at, finality)
            world.advance(action_at)
            merchants += [
                steps.sign_up(n, rng, stripe_client, clock.id)
                for n in range(MERCHANTS)
                if signup_month[n] == month and month > 0
            ]
            duplicates = False
            for merchant in merchants:
                steps.report_usage(merchant, rng, f"m{merchant.n}-{month}")
                for _ in range(STEPS_PER_MONTH):
                    kind = steps.choose(merchant, rng, stripe_client)
                    steps.perform(kind, merchant, rng, world)
                    duplicates |= kind == "duplicate_webhooks"
            world.flush()
            world.run_due_jobs(f"month {month} steps")
            if duplicates:
                world.webhook_faults(duplicate="false")
        # No more usage: every period with usage closes, is rated, and reaches a renewal invoice.
        end_of_life = steps_add_months(start, MONTHS) + ACTION_DAY
        _beat_until(world, merchants, rng, end_of_life + timedelta(days=35), finality, late=False)
        rated_through = world.now()
        _beat_until(world, merchants, rng, end_of_life + timedelta(days=67), finality, late=False)
        world.advance(end_of_life + timedelta(days=67))
        world.run_due_jobs("the end")
        as_of = world.now()
        run = reconciliation_run(window=timedelta(days=31 * (MONTHS + 4)))

    invoices, blocks = books.oracle_differences(
        merchants, stripe_client, terms_catalog, as_of=as_of, rated_through=rated_through, finality=finality
    )
    drift = list(run.differences.values_list("kind", "stripe_id", "expected", "actual"))
    findings = {
        "oracle": blocks,
        "nothing more to bill": [f"{when:%Y-%m-%d %H:%M} {what}" for when, what in world.violations],
        "crashes": [f"{when:%Y-%m-%d %H:%M} {what}" for when, what in world.crashes],
        "webhook deliveries answered 5xx": world.failed_deliveries(),
        "ledger entries not on exactly one invoice": books.ledger_not_on_one_invoice(merchants, stripe_client),
        "overlapping usage periods": books.overlapping_periods(),
        "reconciliation drift": [str(row) for row in drift],
        "status vs subscription": books.status_mismatches(merchants),
    }
    report = {
        "seed": SEED,
        "merchants": MERCHANTS,
        "months": MONTHS,
        "invoices": invoices,
        "ledger_entries": LedgerEntry.objects.exclude(state=LedgerState.NOTHING_DUE).count(),
        "oracle_differences": sum(books.difference_kinds(blocks).values()),
        "difference_kinds": dict(books.difference_kinds(blocks)),
        "reconciliation_differences": run.differences_found,
        "findings": {name: len(found) for name, found in findings.items()},
        "seconds": round(time.monotonic() - started, 1),
        "steps": books.step_counts(merchants),
        "kills": dict(world.kills),
    }
    if REPORT:
        with open(REPORT, "w") as handle:
            json.dump({**report, "details": findings}, handle, default=str)
    print(f"journey simulator: {json.dumps(report)}")
    failed = {name: found for name, found in findings.items() if found}
    assert not failed, f"seed {SEED} (TOLLBOOTH_SIM_SEED={SEED}):\n" + "\n".join(
        f"== {name} ({len(found)}) ==\n" + "\n".join(found) for name, found in failed.items()
    )


def steps_add_months(moment: datetime, months: int) -> datetime:
    return oracle.add_months(moment, months)


def _beat_until(world: World, merchants, rng, until: datetime, finality: timedelta, *, late: bool = True) -> None:
    """Walk the clock through every moment beat matters before `until`, running the due jobs at each.

    For each live subscription's monthly boundaries (on its billing cycle anchor): half an hour before (the
    scheduled downgrades go on), two hours after (the renewal is charged; late events arrive), and after the
    finality window (the period is rated and pushed).
    """
    now = world.now()
    moments: dict[datetime, list] = {}
    for merchant in merchants:
        if merchant.subscription_id is None:
            continue
        sub = world.stripe.v1.subscriptions.retrieve(merchant.subscription_id)
        if sub.status in ("canceled", "incomplete_expired"):
            continue
        anchor = datetime.fromtimestamp(sub.billing_cycle_anchor, tz=UTC)
        k = 0
        while oracle.add_months(anchor, k, anchor.day) > now - finality - timedelta(hours=2):
            k -= 1
        while (boundary := oracle.add_months(anchor, k, anchor.day)) < until:
            k += 1
            for moment, who in (
                (boundary - timedelta(minutes=30), None),
                (boundary + timedelta(hours=2), merchant),
                (boundary + finality + timedelta(hours=1), None),
            ):
                if now < moment < until:
                    moments.setdefault(moment, [])
                    if who is not None:
                        moments[moment].append((who, boundary))
    for moment in sorted(moments):
        world.advance(moment)
        for merchant, boundary in moments[moment]:
            if late and rng.random() < 0.3:
                steps.report_usage(
                    merchant, rng, f"late-{merchant.n}-{boundary:%Y%m%d%H%M}", occurred_at=boundary - LATE
                )
        world.run_due_jobs(f"beat {moment:%Y-%m-%d %H:%M}")
