"""The edges of the journey, through the sandbox's test clock: a cancellation, a replacing subscription,
monthly -> annual, a trial ended early. Amounts come from the catalog's terms, worked out by hand:
Pro includes 2,000 tickets a month then 20c each; Basic 300 then 30c.

Our clock follows the test clock (time_machine); the subscription's changes reach us through the sync a
webhook would run (subscription_refresh), called directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from djstripe import models as djstripe_models

from billing import tasks
from billing.models import LedgerEntry, LedgerState, UsagePeriod
from billing.stripe.client import stripe_api_key
from billing.subscriptions.sync import subscription_refresh
from billing.usage.ingest import usage_events_record
from billing.usage.periods import add_months
from plans.models import PlanPrice
from tests.billing import oracle
from tests.billing.journey import books
from tests.billing.journey.world import catalog_terms
from tests.billing.usage_helpers import event

WINDOW = timedelta(hours=72, minutes=1)  # the finality window, and a minute


@pytest.fixture
def merchant(sandbox, stripe_client, owner):
    """The owner's account as a Stripe customer on a test clock (card on file); our clock follows it."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    start = datetime.now(tz=UTC).replace(microsecond=0)
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(start.timestamp())})
    customer = stripe_client.v1.customers.create(
        params={
            "email": owner.account.billing_email,
            "test_clock": clock.id,
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
            "metadata": {"account_id": str(owner.account.pk)},
        }
    )
    mirrored = djstripe_models.Customer.sync_from_stripe_data(customer, api_key=stripe_api_key())
    djstripe_models.Customer.objects.filter(pk=mirrored.pk).update(subscriber=owner.account)
    owner.start, owner.clock, owner.customer, owner.stripe = start, clock, customer, stripe_client
    owner.accepted = []  # the usage events the product accepted, for the oracle
    with time_machine.travel(start, tick=False) as traveller:
        owner.traveller = traveller
        yield owner


def _advance(merchant, to: datetime) -> None:
    merchant.stripe.v1.test_helpers.test_clocks.advance(merchant.clock.id, params={"frozen_time": int(to.timestamp())})
    merchant.traveller.move_to(to)


def _subscribe(merchant, plan="pro", interval="month", **params):
    price = PlanPrice.objects.get(plan__code=plan, interval=interval, currency="usd")
    subscription = merchant.stripe.v1.subscriptions.create(
        params={"customer": merchant.customer.id, "items": [{"price": price.stripe_price_id}], **params}
    )
    subscription_refresh(subscription_id=subscription.id)
    return subscription


def _report(merchant, key, quantity, at, metric="tickets") -> dict:
    [result] = usage_events_record(
        events=[event(key, at=at, account=merchant.account, metric=metric, quantity=quantity)], caller_account=None
    ).results
    if result["status"] == "new":
        merchant.accepted.append(oracle.UsageEvent(metric, quantity, at))
    return result


def _periods(merchant):
    return list(UsagePeriod.objects.filter(account=merchant.account).order_by("start"))


def _entry(period) -> LedgerEntry:
    return LedgerEntry.objects.get(period=period)


def _invoices(merchant):
    return list(merchant.stripe.v1.invoices.list(params={"customer": merchant.customer.id, "limit": 100}).data)


def _items(merchant):
    return list(merchant.stripe.v1.invoice_items.list(params={"customer": merchant.customer.id, "limit": 100}).data)


def _run_every_job_again_bills_nothing_more(merchant):
    invoices, items = len(_invoices(merchant)), len(_items(merchant))
    assert tasks.rate_closed_usage_periods() == 0
    assert tasks.push_ledger_entries() == 0
    assert (len(_invoices(merchant)), len(_items(merchant))) == (invoices, items)


def _books_equal_the_oracle(merchant, *, expects_overage: bool = True) -> None:
    """Stripe's finalized invoices of the customer equal the independent oracle (tests/billing/oracle.py), line
    by line: plan fees, prorations and overage, from the catalog, the accepted usage events and Stripe's own
    subscription events. What is due by now is rated and pushed first; then both clocks live on 32 days, so
    a renewal sweeps in what waits for it (a pending item is not yet on an invoice)."""
    tasks.rate_closed_usage_periods()
    tasks.push_ledger_entries()
    rated_through = timezone.now()
    frozen = merchant.stripe.v1.test_helpers.test_clocks.retrieve(merchant.clock.id).frozen_time
    as_of = max(rated_through, datetime.fromtimestamp(frozen, UTC)) + timedelta(days=32)
    _advance(merchant, as_of)
    prices, terms = catalog_terms(merchant.start)
    catalog = oracle.Catalog(prices=prices, terms=[terms])
    history = books.subscription_history(merchant.stripe).get(merchant.customer.id, [])
    expected = oracle.expected_fees(catalog, history, as_of=as_of, finalize_delay=books.RENEWAL_FINALIZE_DELAY)
    expected += oracle.expected_overage(
        catalog, history, merchant.accepted, rated_through=rated_through, finality=WINDOW - timedelta(minutes=1)
    )
    actual = oracle.actual_lines(books.customer_invoices(merchant.stripe, merchant.customer.id))
    overage = [line for line in expected if line.kind == oracle.OVERAGE and line.amount]
    assert bool(overage) == expects_overage, overage
    assert oracle.compare(expected, actual) == []


def _own_invoice(merchant, entry):
    invoice = merchant.stripe.v1.invoices.retrieve(entry.stripe_invoice_id)
    assert invoice.status == "paid" and invoice.metadata["ledger_key"] == entry.ledger_key
    return invoice


def test_a_cancellation_bills_the_final_periods_overage_on_an_invoice_of_its_own(merchant):
    start = merchant.start
    subscription = _subscribe(merchant)
    _advance(merchant, start + timedelta(days=10))
    assert _report(merchant, "a", 2010, start + timedelta(days=10))["status"] == "new"
    _advance(merchant, start + timedelta(days=15))
    merchant.stripe.v1.subscriptions.cancel(subscription.id)
    subscription_refresh(subscription_id=subscription.id)

    [period] = _periods(merchant)
    assert (period.start, period.end) == (start, start + timedelta(days=15))  # cut at the cancellation
    assert _report(merchant, "late", 1, start + timedelta(days=14))["status"] == "new"  # booked to it
    assert _report(merchant, "after", 1, start + timedelta(days=15))["error"]["code"] == "after_subscription"

    merchant.traveller.move_to(period.end + WINDOW)
    assert tasks.rate_closed_usage_periods() == 1
    entry = _entry(period)
    assert (entry.state, entry.amount_cents) == (LedgerState.PUSHED, 11 * 20)
    invoice = _own_invoice(merchant, entry)
    assert invoice.amount_paid == 220
    [item] = [i for i in _items(merchant) if i.id == entry.stripe_invoice_item_id]
    assert item.invoice == invoice.id
    assert item.metadata["subscription_id"] == subscription.id
    assert not ((item.get("parent") or {}).get("subscription_details") or {}).get("subscription")  # none: it's over
    _run_every_job_again_bills_nothing_more(merchant)
    _books_equal_the_oracle(merchant)


def test_a_new_subscription_replacing_the_old_cuts_the_period_and_each_is_billed_once(merchant):
    start = merchant.start
    old = _subscribe(merchant)
    _advance(merchant, start + timedelta(days=10))
    _report(merchant, "old", 2005, start + timedelta(days=10))
    _advance(merchant, start + timedelta(days=12))
    new = _subscribe(merchant, "basic")
    merchant.stripe.v1.subscriptions.cancel(old.id)
    subscription_refresh(subscription_id=old.id)
    switch = datetime.fromtimestamp(new.start_date, tz=UTC)
    assert _report(merchant, "new", 301, start + timedelta(days=12))["status"] == "new"

    first, second = _periods(merchant)
    assert (first.start, first.end, first.subscription_id) == (start, switch, old.id)
    assert (second.start, second.end, second.subscription_id) == (switch, add_months(switch, 1), new.id)
    assert second.terms["metrics"]["tickets"] == {"included": 300, "unit_amount_cents": 30, "unit_name": "ticket"}

    merchant.traveller.move_to(first.end + WINDOW)
    tasks.rate_closed_usage_periods()
    entry = _entry(first)
    assert (entry.state, entry.amount_cents) == (LedgerState.PUSHED, 5 * 20)
    assert _own_invoice(merchant, entry).amount_paid == 100
    _run_every_job_again_bills_nothing_more(merchant)

    merchant.traveller.move_to(second.end + WINDOW)
    tasks.rate_closed_usage_periods()
    entry = _entry(second)
    assert (entry.state, entry.amount_cents, entry.stripe_invoice_id) == (LedgerState.PUSHED, 30, "")
    [item] = [i for i in _items(merchant) if i.id == entry.stripe_invoice_item_id]
    assert item.invoice is None  # pending on the live monthly subscription: its renewal sweeps it in
    assert item.parent.subscription_details.subscription == new.id
    _books_equal_the_oracle(merchant)


def test_monthly_to_annual_cuts_the_period_and_counts_each_quota_once(merchant):
    start = merchant.start
    subscription = _subscribe(merchant)
    _advance(merchant, start + timedelta(days=10))
    _report(merchant, "before", 2100, start + timedelta(days=9))
    annual = PlanPrice.objects.get(plan__code="pro", interval="year", currency="usd")
    merchant.stripe.v1.subscriptions.update(
        subscription.id,
        params={"items": [{"id": subscription["items"]["data"][0]["id"], "price": annual.stripe_price_id}]},
    )
    subscription_refresh(subscription_id=subscription.id)
    anchor = merchant.stripe.v1.subscriptions.retrieve(subscription.id).billing_cycle_anchor
    change = datetime.fromtimestamp(anchor, UTC)
    assert change == start + timedelta(days=10)

    _advance(merchant, start + timedelta(days=11))
    assert _report(merchant, "late", 1, start + timedelta(days=9))["status"] == "new"  # to the cut period
    assert _report(merchant, "after", 2050, start + timedelta(days=11))["status"] == "new"
    cut, annual_month = _periods(merchant)
    assert (cut.start, cut.end) == (start, change)
    assert (annual_month.start, annual_month.end) == (change, add_months(change, 1))  # monthly, from the anchor

    merchant.traveller.move_to(annual_month.end + WINDOW)
    assert tasks.rate_closed_usage_periods() == 2
    # Each period keeps its whole quota: 2,101 - 2,000 and 2,050 - 2,000 tickets over, at 20c.
    assert [_entry(p).amount_cents for p in (cut, annual_month)] == [101 * 20, 50 * 20]
    # The subscription renews in a year: both overages go on invoices of their own, now.
    assert [_own_invoice(merchant, _entry(p)).amount_paid for p in (cut, annual_month)] == [2020, 1000]
    _run_every_job_again_bills_nothing_more(merchant)
    _books_equal_the_oracle(merchant)


def test_a_late_event_after_a_trial_then_a_move_to_annual_is_in_the_period_the_trial_ended_into(merchant):
    """Seed 9101 of the simulator: a trial ran out, days later the merchant went annual (the anchor moved to the
    change), then an event from before the change arrived late. Its period begins at the trial's end, not at
    the signup (the trial's own days are never billed): under the new anchor's grid alone it began at signup."""
    start = merchant.start
    subscription = _subscribe(merchant, trial_period_days=14)
    trial_end = start + timedelta(days=14)
    _advance(merchant, trial_end + timedelta(days=2))
    annual = PlanPrice.objects.get(plan__code="pro", interval="year", currency="usd")
    merchant.stripe.v1.subscriptions.update(
        subscription.id,
        params={"items": [{"id": subscription["items"]["data"][0]["id"], "price": annual.stripe_price_id}]},
    )
    subscription_refresh(subscription_id=subscription.id)
    change = datetime.fromtimestamp(
        merchant.stripe.v1.subscriptions.retrieve(subscription.id).billing_cycle_anchor, UTC
    )
    assert change == trial_end + timedelta(days=2)

    _advance(merchant, change + timedelta(hours=2))
    assert _report(merchant, "late", 2100, change - timedelta(hours=1))["status"] == "new"
    [paid] = _periods(merchant)
    assert (paid.start, paid.end, paid.trial) == (trial_end, change, False)

    merchant.traveller.move_to(paid.end + WINDOW)
    assert tasks.rate_closed_usage_periods() == 1
    assert _entry(paid).amount_cents == 100 * 20  # 2,100 - 2,000 tickets at 20c
    _books_equal_the_oracle(merchant)


def test_a_trial_ended_early_is_counted_never_billed_and_the_next_period_starts_at_its_end(merchant):
    start = merchant.start
    subscription = _subscribe(merchant, trial_period_days=14)
    _advance(merchant, start + timedelta(days=2))
    _report(merchant, "trial", 2100, start + timedelta(days=2))
    [trial] = _periods(merchant)
    assert (trial.start, trial.end, trial.trial) == (start, start + timedelta(days=14), True)  # not before signup

    _advance(merchant, start + timedelta(days=5))
    merchant.stripe.v1.subscriptions.update(subscription.id, params={"trial_end": "now"})
    subscription_refresh(subscription_id=subscription.id)
    assert _report(merchant, "paid", 2001, start + timedelta(days=5))["status"] == "new"
    trial, paid = _periods(merchant)
    assert (trial.end, paid.start, paid.trial) == (start + timedelta(days=5), start + timedelta(days=5), False)

    merchant.traveller.move_to(paid.end + WINDOW)
    tasks.rate_closed_usage_periods()
    trial_entry = _entry(trial)
    assert (trial_entry.state, trial_entry.amount_cents) == (LedgerState.NOTHING_DUE, 0)
    assert {line["metric"]: line["used"] for line in trial_entry.lines}["tickets"] == 2100  # shown, not billed
    assert _entry(paid).amount_cents == 20
    assert [i.amount for i in _items(merchant) if (i.metadata or {}).get("ledger_key")] == [20]
    _books_equal_the_oracle(merchant)


def test_a_subscription_that_expired_unpaid_counts_its_usage_and_bills_nothing(merchant):
    """The first invoice is never paid, so the subscription never started (incomplete -> incomplete_expired
    after 23 hours): usage reported meanwhile is kept on its period, rated nothing due, and nothing is pushed."""
    start = merchant.start
    failing = merchant.stripe.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": merchant.customer.id}
    )
    merchant.stripe.v1.customers.update(
        merchant.customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    subscription = _subscribe(merchant, plan="starter")
    assert subscription.status == "incomplete"
    _advance(merchant, start + timedelta(hours=1))
    assert _report(merchant, "a", 2000, start + timedelta(hours=1))["status"] == "new"

    _advance(merchant, start + timedelta(hours=24))
    subscription_refresh(subscription_id=subscription.id)
    assert merchant.stripe.v1.subscriptions.retrieve(subscription.id).status == "incomplete_expired"

    [period] = _periods(merchant)
    merchant.traveller.move_to(period.end + WINDOW)
    tasks.rate_closed_usage_periods()
    entry = _entry(period)
    assert (entry.state, entry.amount_cents) == (LedgerState.NOTHING_DUE, 0)
    assert [(line["metric"], line["used"]) for line in entry.lines if line["used"]] == [("tickets", 2000)]
    assert _items(merchant) == []
    _run_every_job_again_bills_nothing_more(merchant)
    _books_equal_the_oracle(merchant, expects_overage=False)
