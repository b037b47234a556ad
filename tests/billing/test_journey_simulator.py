"""The model-based journey simulator: a seeded population lives on a sandbox test clock, and the books must balance.

Real parts: one sandbox test clock our clock (time-machine) follows, webhooks reaching the live app, the beat jobs
run at every moment beat would run them (each billing boundary's last half hour, two hours after it, after its
finality window, and after each step). A seeded RNG picks each merchant's steps of the month from the kinds the
issue lists (tests/billing/journey/steps.py), weighted, each under its precondition, each at its own seeded moment
away from the merchant's boundaries (tests/billing/journey/agenda.py: no step at a renewal's very second).

After every step the due jobs run twice: the second run must bill nothing more. At the end, for every account:
- Stripe's finalized invoices equal the independent oracle (tests/billing/oracle.py) line by line, to the cent;
- every rated ledger entry is on exactly one finalized invoice;
- no two usage periods of an account overlap; reconciliation reports zero drift;
- the account's status matches its subscription's.

`TOLLBOOTH_SIM_MERCHANTS` (CI: 4) and `TOLLBOOTH_SIM_MONTHS` (14) size it; `TOLLBOOTH_SIM_SEED` replays a seed
(CI: 4242 and 4243; printed at the start and in every failure); `TOLLBOOTH_SIM_STEPS_OFF` turns step kinds off;
`bench/journey.py` runs a large population and prints the table.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from datetime import datetime, timedelta
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
from tests.billing.journey import agenda, books, steps
from tests.billing.journey.world import World, catalog_terms

MERCHANTS = int(os.environ.get("TOLLBOOTH_SIM_MERCHANTS", "4"))
MONTHS = int(os.environ.get("TOLLBOOTH_SIM_MONTHS", "14"))
# CI replays two seeds (two populations of four, one after the other), so a red run is the code's doing, not
# the draw's, and every kind of step comes up a few times; TOLLBOOTH_SIM_SEED=<n> replays one seed (the bench
# passes one per shard), TOLLBOOTH_SIM_SEED=random explores a new one.
_SEEDS = os.environ.get("TOLLBOOTH_SIM_SEED", "4242,4243")
SEEDS = [random.SystemRandom().randrange(10**6)] if _SEEDS == "random" else [int(x) for x in _SEEDS.split(",")]
REPORT = os.environ.get("TOLLBOOTH_SIM_REPORT", "")
# A fixed start, so a seed replays the same journey whatever the day (month lengths, the 29th-31st anchors).
START = datetime.fromisoformat(os.environ.get("TOLLBOOTH_SIM_START", "2027-01-04T10:00:00+00:00"))
ACTION_DAY = timedelta(days=10)  # the population's life ends ten days into its last month
# A small explicit share of months whose usage arrives in the very second of a step (rule 2's half-open cut:
# an event at the cut's second belongs to the period after it); the other months' usage has its own moment.
USAGE_SAME_SECOND_AS_STEP = float(os.environ.get("TOLLBOOTH_SIM_USAGE_SAME_SECOND", "0.2"))
STEPS_PER_MONTH = 2  # two steps a month: every kind comes up a few times even in CI's small population


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", SEEDS)
def test_a_seeded_population_lives_its_months_and_the_books_equal_the_oracle(
    sandbox, stripe_client, live_server, catalog, seed, request
):
    print(f"\njourney simulator: seed {seed} (replay with TOLLBOOTH_SIM_SEED={seed})")
    started = time.monotonic()
    rng = random.Random(seed)
    Plan.objects.filter(code=steps.SEAT_PLAN).update(per_seat=True)  # seat changes reach Stripe's quantity
    call_command("sync_plans", stdout=StringIO())
    endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(djstripe_tolerance=0)
    start = START
    prices, terms = catalog_terms(start)
    terms_catalog = oracle.Catalog(prices=prices, terms=[terms])
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(start.timestamp())})
    finality = timedelta(hours=settings.TOLLBOOTH_USAGE_FINALITY_HOURS)

    merchants: list[steps.Merchant] = []
    with time_machine.travel(start, tick=False) as traveller:
        world = World(sandbox, stripe_client, clock.id, traveller, endpoint.id, settings.TOLLBOOTH_USAGE_FINALITY_HOURS)
        request.addfinalizer(world.heal)
        signup_month = [0 if n < max(1, MERCHANTS * 7 // 10) else rng.randint(1, 3) for n in range(MERCHANTS)]
        for n in range(MERCHANTS):
            if signup_month[n] == 0:
                merchants.append(steps.sign_up(n, rng, stripe_client, clock.id, world.flush))
        world.flush()
        world.run_due_jobs("signups")

        for month in range(MONTHS):
            _live_month(world, merchants, rng, month, start, signup_month, clock.id, finality)
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
        "Stripe event handlers not succeeded": books.handlers_not_succeeded(),
        "ledger entries not on exactly one invoice": books.ledger_not_on_one_invoice(merchants, stripe_client),
        "overlapping usage periods": books.overlapping_periods(),
        "reconciliation drift": [str(row) for row in drift],
        "status vs subscription": books.status_mismatches(merchants),
    }
    report = {
        "seed": seed,
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
        "fraud_holds": _fraud_holds(merchants),
    }
    if REPORT:
        with open(REPORT, "w") as handle:
            json.dump({**report, "details": findings}, handle, default=str)
    print(f"journey simulator: {json.dumps(report)}")
    failed = {name: found for name, found in findings.items() if found}
    assert not failed, f"seed {seed} (TOLLBOOTH_SIM_SEED={seed}):\n" + "\n".join(
        f"== {name} ({len(found)}) ==\n" + "\n".join(found) for name, found in failed.items()
    )


def _fraud_holds(merchants) -> dict:
    """Why merchants were held for review (it refuses seats and plan changes): the signals of held accounts."""
    from fraud.models import RiskSignal

    held = [m.account_id for m in merchants if m.account.risk_hold]
    codes = RiskSignal.objects.filter(account_id__in=held).values_list("stage", "code")
    return {"accounts": len(held), "signals": dict(Counter(f"{stage}:{code}" for stage, code in codes))}


def steps_add_months(moment: datetime, months: int) -> datetime:
    return oracle.add_months(moment, months)


def _live_month(world: World, merchants: list, rng, month: int, start, signup_month, clock_id, finality) -> None:
    """One calendar month of the population: signups, usage and steps at their own moments, beat in between."""
    window_start, window_end = steps_add_months(start, month), steps_add_months(start, month + 1)
    plan = agenda.Agenda()
    for merchant in merchants:
        plan.add_beats(world, merchant, window_end, finality)
        _plan_steps(world, plan, merchant, rng, window_start, window_end)
    for n in range(MERCHANTS):
        if signup_month[n] == month and month > 0:
            lo, hi = window_start + agenda.QUIET, window_start + timedelta(days=20)
            plan.add(lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds()))), "signup", n)
    while (due := plan.pop_moment()) is not None:
        moment, actions = due
        world.advance(moment)
        label = f"beat {moment:%Y-%m-%d %H:%M}"
        billable = False  # usage alone and "nothing" change nothing a job bills: no run of the jobs for them
        for action in actions:
            if action[0] == "signup":
                merchant = steps.sign_up(action[1], rng, world.stripe, clock_id, world.flush)
                merchants.append(merchant)
                world.flush()
                plan.add_beats(world, merchant, window_end, finality)
                _plan_steps(world, plan, merchant, rng, moment, window_end)
                label, billable = f"signup {moment:%Y-%m-%d %H:%M}", True
            elif action[0] == "usage":
                steps.report_usage(action[1], rng, f"m{action[1].n}-{month}")
                label = f"merchant {action[1].n} usage {moment:%Y-%m-%d %H:%M}"
            elif action[0] == "step":
                merchant, with_usage = action[1], action[2]
                if with_usage:  # the month's usage arrives in the very second of the step, just before it
                    steps.report_usage(merchant, rng, f"m{merchant.n}-{month}")
                    merchant.kinds["usage:same_second_as_step"] += 1
                kind = steps.choose(merchant, rng, world.stripe)
                steps.perform(kind, merchant, rng, world)
                world.flush()
                plan.replan_beats(world, merchant, window_end, finality)
                label = f"merchant {merchant.n} {kind} {moment:%Y-%m-%d %H:%M}"
                billable |= kind != "nothing"
                if kind == "duplicate_webhooks":
                    world.run_due_jobs(label)
                    world.webhook_faults(duplicate="false")
            elif action[1] is not None and rng.random() < 0.3:  # a late event arrives two hours after a boundary
                boundary = action[2]
                steps.report_usage(
                    action[1], rng, f"late-{action[1].n}-{boundary:%Y%m%d%H%M}", occurred_at=boundary - agenda.LATE
                )
        if billable or any(action[0] == "beat" for action in actions):
            world.run_due_jobs(label)


def _plan_steps(world: World, plan, merchant, rng, lo, window_end) -> None:
    """The merchant's steps of the month, each at its own seeded moment away from its subscription's boundaries."""
    avoid = agenda.boundaries(world, merchant, lo)
    moments = agenda.quiet_moments(rng, lo + agenda.QUIET, window_end - agenda.QUIET, avoid, STEPS_PER_MONTH + 1)
    if not moments:
        return
    same_second = rng.random() < USAGE_SAME_SECOND_AS_STEP and len(moments) > 1
    if not same_second:
        plan.add(moments.pop(rng.randrange(len(moments))), "usage", merchant)
    for index, moment in enumerate(moments[:STEPS_PER_MONTH]):
        plan.add(moment, "step", merchant, same_second and index == 0)


def _beat_until(world: World, merchants, rng, until: datetime, finality: timedelta, *, late: bool = True) -> None:
    """Walk the clock through every moment beat matters before `until`, running the due jobs at each.

    For each live subscription's monthly boundaries (on its billing cycle anchor): half an hour before (the
    scheduled downgrades go on), two hours after (the renewal is charged; late events arrive), and after the
    finality window (the period is rated and pushed).
    """
    now = world.now()
    moments: dict[datetime, list] = {}
    for merchant in merchants:
        for moment, who, boundary in agenda.beat_moments(world, merchant, now, until, finality):
            moments.setdefault(moment, [])
            if who is not None:
                moments[moment].append((who, boundary))
    for moment in sorted(moments):
        world.advance(moment)
        for merchant, boundary in moments[moment]:
            if late and rng.random() < 0.3:
                steps.report_usage(
                    merchant, rng, f"late-{merchant.n}-{boundary:%Y%m%d%H%M}", occurred_at=boundary - agenda.LATE
                )
        world.run_due_jobs(f"beat {moment:%Y-%m-%d %H:%M}")
