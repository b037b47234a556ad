"""Pending items of a subscription that stops renewing are billed final; events booked before a cut move
to the period that contains them. Through the sandbox's test clock; amounts from the catalog's terms
(Pro includes 2,000 tickets a month then 20c each).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import stripe
from django.utils import timezone

from accounts.models import AuditLog
from billing import tasks
from billing.ledger import push as ledger_push
from billing.ledger.push import PUSH_LEASE, ledger_entries_push_due
from billing.ledger.rate import usage_periods_rate_closed
from billing.ledger.settle import ledger_entries_mark_invoiced
from billing.models import LedgerState, UsageEvent, UsageRollup
from billing.subscriptions.sync import subscription_refresh
from billing.usage.periods import add_months
from plans.models import PlanPrice
from tests.billing.test_ledger_edges import (  # noqa: F401 (merchant is a fixture)
    WINDOW,
    _advance,
    _books_equal_the_oracle,
    _entry,
    _items,
    _own_invoice,
    _periods,
    _report,
    _run_every_job_again_bills_nothing_more,
    _subscribe,
    merchant,
)


def _paid_with_key(shop, key):
    invoices = shop.stripe.v1.invoices.list(params={"customer": shop.customer.id, "limit": 100}).data
    return [
        invoice
        for invoice in invoices
        if invoice.status == "paid"
        and any((line.metadata or {}).get("ledger_key") == key for line in invoice.lines.data)
    ]


def test_a_pending_item_of_a_subscription_then_canceled_at_period_end_is_billed_once_on_its_own_invoice(merchant):  # noqa: F811
    start = merchant.start
    subscription = _subscribe(merchant)
    _report(merchant, "a", 2010, start)
    first_end = add_months(start, 1)
    _advance(merchant, first_end + WINDOW)
    subscription_refresh(subscription_id=subscription.id)
    assert tasks.rate_closed_usage_periods() == 1
    entry = _entry(_periods(merchant)[0])
    pending_id = entry.stripe_invoice_item_id
    assert (entry.state, entry.amount_cents, entry.stripe_invoice_id) == (LedgerState.PUSHED, 10 * 20, "")

    merchant.stripe.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    subscription_refresh(subscription_id=subscription.id)  # Stripe makes no final invoice: bill it now

    entry.refresh_from_db()
    assert entry.rehomed_at is not None and entry.stripe_invoice_item_id != pending_id
    try:
        gone = merchant.stripe.v1.invoice_items.retrieve(pending_id).get("deleted", False)
    except stripe.InvalidRequestError:
        gone = True
    assert gone
    invoice = _own_invoice(merchant, entry)
    assert invoice.amount_paid == 200
    assert ledger_entries_mark_invoiced(invoice_id=invoice.id) == 1
    entry.refresh_from_db()
    assert entry.state == LedgerState.INVOICED
    audit = AuditLog.objects.get(action="ledger.rehomed")
    assert audit.actor is None and audit.reason and audit.before["stripe_invoice_item_id"] == pending_id

    _advance(merchant, add_months(start, 2) + timedelta(hours=1))  # the boundary passes: it ends
    subscription_refresh(subscription_id=subscription.id)
    subscription_refresh(subscription_id=subscription.id)
    _run_every_job_again_bills_nothing_more(merchant)
    assert [i.amount for i in _items(merchant) if (i.metadata or {}).get("ledger_key") == entry.ledger_key] == [200]
    assert [i.amount_paid for i in _paid_with_key(merchant, entry.ledger_key)] == [200]  # once
    _books_equal_the_oracle(merchant)


def test_an_entry_rated_while_its_subscription_is_set_to_cancel_goes_on_an_invoice_of_its_own(merchant):  # noqa: F811
    start = merchant.start
    subscription = _subscribe(merchant)
    _report(merchant, "a", 2003, start)
    first_end = add_months(start, 1)
    _advance(merchant, first_end + timedelta(days=1))
    merchant.stripe.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    subscription_refresh(subscription_id=subscription.id)
    _advance(merchant, first_end + WINDOW)
    assert tasks.rate_closed_usage_periods() == 1
    entry = _entry(_periods(merchant)[0])
    assert entry.rehomed_at is None  # final from the start
    assert _own_invoice(merchant, entry).amount_paid == 60
    [item] = [i for i in _items(merchant) if i.id == entry.stripe_invoice_item_id]
    assert not ((item.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    _run_every_job_again_bills_nothing_more(merchant)
    _books_equal_the_oracle(merchant)


def test_usage_booked_before_the_sync_cut_the_period_moves_to_the_new_period(merchant):  # noqa: F811
    start = merchant.start
    subscription = _subscribe(merchant)
    _advance(merchant, start + timedelta(days=10))
    _report(merchant, "before", 2100, start + timedelta(days=9))
    annual = PlanPrice.objects.get(plan__code="pro", interval="year", currency="usd")
    merchant.stripe.v1.subscriptions.update(
        subscription.id,
        params={"items": [{"id": subscription["items"]["data"][0]["id"], "price": annual.stripe_price_id}]},
    )
    change = datetime.fromtimestamp(
        merchant.stripe.v1.subscriptions.retrieve(subscription.id).billing_cycle_anchor, UTC
    )
    # The webhook has not arrived yet: ingestion still books by the monthly period.
    assert _report(merchant, "same instant", 2050, change)["status"] == "new"
    assert [p.end for p in _periods(merchant)] == [add_months(start, 1)]
    subscription_refresh(subscription_id=subscription.id)
    subscription_refresh(subscription_id=subscription.id)  # a second sync moves nothing more

    cut, annual_month = _periods(merchant)
    assert (cut.start, cut.end, annual_month.start, annual_month.end) == (start, change, change, add_months(change, 1))
    assert UsageEvent.objects.get(idempotency_key="same instant").period_id == annual_month.pk
    used = dict(UsageRollup.objects.filter(metric="tickets").values_list("period_id", "used"))
    assert used == {cut.pk: 2100, annual_month.pk: 2050}

    merchant.traveller.move_to(annual_month.end + WINDOW)
    assert tasks.rate_closed_usage_periods() == 2
    assert [_entry(p).amount_cents for p in (cut, annual_month)] == [100 * 20, 50 * 20]
    _run_every_job_again_bills_nothing_more(merchant)
    _books_equal_the_oracle(merchant)


def test_a_switch_at_the_very_boundary_hands_the_new_period_to_the_new_subscription(merchant):  # noqa: F811
    start = merchant.start
    old = _subscribe(merchant, "basic")
    boundary = add_months(start, 1)
    _advance(merchant, boundary)
    subscription_refresh(subscription_id=old.id)
    # Booked by the old subscription's context before the switch reached us: opens [boundary, +1 month).
    assert _report(merchant, "at boundary", 2010, boundary)["status"] == "new"
    new = _subscribe(merchant, "pro")
    merchant.stripe.v1.subscriptions.cancel(old.id)
    subscription_refresh(subscription_id=old.id)
    switch = datetime.fromtimestamp(new.start_date, tz=UTC)
    assert switch == boundary

    [period] = _periods(merchant)
    assert (period.start, period.end, period.subscription_id) == (boundary, add_months(boundary, 1), new.id)
    assert period.plan_price.plan.code == "pro" and period.terms["metrics"]["tickets"]["included"] == 2000
    merchant.traveller.move_to(period.end + WINDOW)
    assert tasks.rate_closed_usage_periods() == 1
    assert _entry(period).amount_cents == 10 * 20  # on Pro's terms, not Basic's
    _books_equal_the_oracle(merchant)


def test_a_trial_ended_at_its_very_start_leaves_a_paid_period(merchant):  # noqa: F811
    start = merchant.start
    subscription = _subscribe(merchant, trial_period_days=14)
    _report(merchant, "first", 2005, start)
    [period] = _periods(merchant)
    assert (period.end, period.trial) == (start + timedelta(days=14), True)
    merchant.stripe.v1.subscriptions.update(subscription.id, params={"trial_end": "now"})  # the same instant
    subscription_refresh(subscription_id=subscription.id)

    [period] = _periods(merchant)
    assert (period.start, period.end, period.trial) == (start, add_months(start, 1), False)
    merchant.traveller.move_to(period.end + WINDOW)
    assert tasks.rate_closed_usage_periods() == 1
    assert _entry(period).amount_cents == 5 * 20
    _books_equal_the_oracle(merchant)


def test_usage_in_the_very_second_of_a_switch_is_billed_on_the_new_subscription(merchant):  # noqa: F811
    """Old canceled first, new created after, all in one second: the event at that second was booked to the
    old period before either; the cancellation cuts the old period there (the event has nowhere else to go
    yet) and the new subscription takes it (the cut is half-open: its second belongs to what comes after)."""
    start = merchant.start
    old = _subscribe(merchant)
    _advance(merchant, start + timedelta(days=10))
    _report(merchant, "old", 2005, start + timedelta(days=10))
    switch = start + timedelta(days=12)
    _advance(merchant, switch)
    assert _report(merchant, "at-switch", 350, switch)["status"] == "new"  # booked to the old period
    merchant.stripe.v1.subscriptions.cancel(old.id)
    subscription_refresh(subscription_id=old.id)
    new = _subscribe(merchant, "basic")
    assert datetime.fromtimestamp(new.start_date, tz=UTC) == switch

    first, second = _periods(merchant)
    assert (first.start, first.end, first.subscription_id) == (start, switch, old.id)
    assert (second.start, second.subscription_id) == (switch, new.id)
    assert sorted(second.events.values_list("idempotency_key", flat=True)) == ["at-switch"]
    assert {r.metric: r.used for r in first.rollups.all()} == {"tickets": 2005}
    assert {r.metric: r.used for r in second.rollups.all()} == {"tickets": 350}

    merchant.traveller.move_to(second.end + WINDOW)
    tasks.rate_closed_usage_periods()
    assert _entry(first).amount_cents == 5 * 20  # Pro: 2,005 - 2,000 at 20c
    assert _entry(second).amount_cents == 50 * 30  # Basic: 350 - 300 at 30c
    _run_every_job_again_bills_nothing_more(merchant)
    _books_equal_the_oracle(merchant)


def test_a_push_killed_after_stripe_answered_then_a_cancellation_bills_it_final_once(merchant, monkeypatch):  # noqa: F811
    """The worker dies after the item is pending on the subscription and before our record; the merchant
    cancels before the retry (the cancellation's re-home sees no pushed entry to move). The retry finds the
    item, deletes it and bills the amount on an invoice of its own: a pending item of a subscription that
    will never renew again would never be invoiced."""
    start = merchant.start
    subscription = _subscribe(merchant)
    _report(merchant, "a", 2010, start)
    _advance(merchant, add_months(start, 1) + WINDOW)
    subscription_refresh(subscription_id=subscription.id)

    def killed(*args, **kwargs):
        raise SystemExit("worker killed after Stripe answered")

    assert usage_periods_rate_closed() == 1
    with monkeypatch.context() as patch:
        patch.setattr(ledger_push, "_record_pushed", killed)
        with pytest.raises(SystemExit):
            ledger_entries_push_due()
    entry = _entry(_periods(merchant)[0])
    [pending] = [i for i in _items(merchant) if (i.metadata or {}).get("ledger_key") == entry.ledger_key]
    assert (entry.state, pending.invoice, pending.parent.subscription_details.subscription) == (
        LedgerState.RATED,
        None,
        subscription.id,
    )

    merchant.stripe.v1.subscriptions.cancel(subscription.id)
    subscription_refresh(subscription_id=subscription.id)
    entry.refresh_from_db()
    assert entry.state == LedgerState.RATED  # held by the dead push's lease: nothing to re-home yet

    merchant.traveller.move_to(timezone.now() + PUSH_LEASE + timedelta(seconds=1))
    assert ledger_entries_push_due() == 1
    entry.refresh_from_db()
    assert entry.state == LedgerState.PUSHED and entry.stripe_invoice_item_id != pending.id
    assert _own_invoice(merchant, entry).amount_paid == 10 * 20  # Pro: 2,010 - 2,000 at 20c
    assert [i.amount for i in _items(merchant) if (i.metadata or {}).get("ledger_key") == entry.ledger_key] == [200]
    _run_every_job_again_bills_nothing_more(merchant)
    _books_equal_the_oracle(merchant)
