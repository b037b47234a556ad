"""Rating and the ledger against the live sandbox: quota edges, plan changes, crashes, re-runs, re-push.

Each test subscribes the merchant at the sandbox (real customer, subscription and prices), reports usage,
then moves our clock past the period's end and its finality window and runs the beat tasks.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import AuditLog
from billing import tasks
from billing.ledger import push as ledger_push
from billing.ledger.push import PUSH_LEASE, ledger_entries_push_due
from billing.ledger.rate import usage_periods_rate_closed
from billing.ledger.settle import ledger_entries_mark_invoiced
from billing.models import LedgerEntry, LedgerState, UsagePeriod, UsagePeriodState
from billing.stripe.customers import customer_ensure
from billing.subscriptions.sync import subscription_refresh
from billing.usage.ingest import usage_events_record
from billing.usage.periods import usage_period_raise_plan
from plans.models import PlanPrice
from tests.billing.usage_helpers import event

OTHER_SANDBOX_KEY = "sk_test_anotherKeySoIdempotencyIsForgotten0"


@pytest.fixture
def shop(sandbox, owner, stripe_client):
    """The owner's account subscribed to Pro monthly at the sandbox, mirrored."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    owner.sandbox = sandbox
    owner.stripe = stripe_client
    owner.subscribe = lambda plan="pro", interval="month": _subscribe(owner, plan, interval)
    return owner


def _subscribe(shop, plan, interval):
    customer = customer_ensure(account=shop.account)
    shop.stripe.v1.customers.update(
        customer.id,
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}},
    )
    price = PlanPrice.objects.get(plan__code=plan, interval=interval, currency="usd")
    subscription = shop.stripe.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.stripe_price_id}]}
    )
    subscription_refresh(subscription_id=subscription.id)
    shop.subscription_id = subscription.id
    return subscription


def _report(account, n, *, prefix="t", metric="tickets", at=None):
    at = at or timezone.now()
    events = [event(f"{prefix}-{i}", at=at, account=account, metric=metric) for i in range(n)]
    for start in range(0, n, 1000):
        counts = usage_events_record(events=events[start : start + 1000], caller_account=None).counts
        assert counts["refused"] == 0
    return n


def _after_window(account):
    period = UsagePeriod.objects.get(account=account)
    return period.end + timedelta(hours=72, minutes=1)


def _items(shop):
    customer = customer_ensure(account=shop.account)
    return list(shop.stripe.v1.invoice_items.list(params={"customer": customer.id, "limit": 100}).data)


def test_usage_exactly_at_the_quota_writes_a_zero_entry_and_pushes_nothing(shop):
    shop.subscribe()
    _report(shop.account, 2000)  # Pro includes 2,000 tickets
    with time_machine.travel(_after_window(shop.account), tick=False):
        assert tasks.rate_closed_usage_periods() == 1
    entry = LedgerEntry.objects.get(account=shop.account)
    assert (entry.state, entry.amount_cents) == (LedgerState.NOTHING_DUE, 0)
    assert entry.lines[1] == {
        "metric": "tickets",
        "unit_name": "ticket",
        "included": 2000,
        "used": 2000,
        "overage_units": 0,
        "unit_amount_cents": 20,
        "amount_cents": 0,
    }
    assert _items(shop) == []


def test_one_unit_over_the_quota_is_billed_once_as_one_invoice_item(shop):
    shop.subscribe()
    _report(shop.account, 2001)
    _report(shop.account, 3, metric="automated_resolutions")  # 500 included: free
    with time_machine.travel(_after_window(shop.account), tick=False):
        tasks.rate_closed_usage_periods()
        tasks.rate_closed_usage_periods()  # a second beat run finds nothing to do
        tasks.push_ledger_entries()
    entry = LedgerEntry.objects.get(account=shop.account)
    assert (entry.state, entry.amount_cents, entry.currency) == (LedgerState.PUSHED, 20, "usd")
    [item] = _items(shop)
    assert (item.amount, item.currency, item.id) == (20, "usd", entry.stripe_invoice_item_id)
    assert item.metadata["ledger_entry_id"] == str(entry.pk)
    assert item.invoice is None  # pending: it rides on the subscription's next invoice


def test_an_upgrade_mid_period_rates_the_whole_period_on_the_bigger_plan(shop):
    shop.subscribe("pro")
    _report(shop.account, 2500)  # 500 over Pro (20¢ each = $100)
    subscription = shop.stripe.v1.subscriptions.retrieve(shop.subscription_id)
    advanced = PlanPrice.objects.get(plan__code="advanced", interval="month")
    shop.stripe.v1.subscriptions.update(
        shop.subscription_id,
        params={"items": [{"id": subscription["items"]["data"][0]["id"], "price": advanced.stripe_price_id}]},
    )
    subscription_refresh(subscription_id=shop.subscription_id)
    _report(shop.account, 3000, prefix="after")  # 5,500 in all: 500 over Advanced's 5,000, at 15¢
    period = UsagePeriod.objects.get(account=shop.account)
    assert period.plan_price == advanced
    with time_machine.travel(_after_window(shop.account), tick=False):
        tasks.rate_closed_usage_periods()
    entry = LedgerEntry.objects.get(account=shop.account)
    assert entry.amount_cents == 500 * 15
    assert entry.plan_price == advanced


def test_a_downgrade_never_lowers_the_current_periods_plan(shop):
    shop.subscribe("advanced")
    _report(shop.account, 1)
    subscription = shop.stripe.v1.subscriptions.retrieve(shop.subscription_id)
    pro = PlanPrice.objects.get(plan__code="pro", interval="month")
    shop.stripe.v1.subscriptions.update(
        shop.subscription_id,
        params={"items": [{"id": subscription["items"]["data"][0]["id"], "price": pro.stripe_price_id}]},
    )
    subscription_refresh(subscription_id=shop.subscription_id)
    assert usage_period_raise_plan(account=shop.account) == 0
    assert UsagePeriod.objects.get(account=shop.account).plan_price.plan.code == "advanced"


def test_a_crash_after_the_ledger_write_then_a_rerun_bills_once(shop):
    shop.subscribe()
    _report(shop.account, 2010)
    with time_machine.travel(_after_window(shop.account), tick=False):
        usage_periods_rate_closed()  # ...and the worker dies before pushing
        assert LedgerEntry.objects.get(account=shop.account).state == LedgerState.RATED
        tasks.rate_closed_usage_periods()  # the re-run: rates nothing again, pushes the entry
        tasks.push_ledger_entries()
    assert len(_items(shop)) == 1
    assert LedgerEntry.objects.get(account=shop.account).amount_cents == 200


def _crash_after_stripe(monkeypatch):
    def crash(*args, **kwargs):
        raise SystemExit("worker killed after Stripe answered")

    monkeypatch.setattr(ledger_push, "_record_pushed", crash)


def test_a_crash_between_the_stripe_write_and_our_record_bills_once_on_rerun(shop, monkeypatch):
    shop.subscribe()
    _report(shop.account, 2010)
    when = _after_window(shop.account)
    with time_machine.travel(when, tick=False):
        usage_periods_rate_closed()
        with monkeypatch.context() as patch:
            _crash_after_stripe(patch)
            with pytest.raises(SystemExit):
                ledger_entries_push_due()
        assert ledger_entries_push_due() == 0  # the crashed push still holds its lease
    with time_machine.travel(when + PUSH_LEASE + timedelta(seconds=1), tick=False):
        assert ledger_entries_push_due() == 1  # same idempotency key: Stripe replays its answer
    [item] = _items(shop)
    entry = LedgerEntry.objects.get(account=shop.account)
    assert (entry.state, entry.stripe_invoice_item_id, entry.push_attempts) == (LedgerState.PUSHED, item.id, 2)


def test_a_rerun_after_stripes_idempotency_window_finds_the_item_by_metadata(shop, monkeypatch, settings):
    shop.subscribe()
    _report(shop.account, 2010)
    when = _after_window(shop.account)
    with time_machine.travel(when, tick=False):
        usage_periods_rate_closed()
        with monkeypatch.context() as patch:
            _crash_after_stripe(patch)
            with pytest.raises(SystemExit):
                ledger_entries_push_due()
    # Stripe keeps idempotency keys 24 hours; the sandbox scopes them per API key, so another key is a
    # Stripe that has forgotten ours: only the ledger id in the metadata can stop a second item.
    settings.STRIPE_TEST_SECRET_KEY = OTHER_SANDBOX_KEY
    with time_machine.travel(when + timedelta(days=2), tick=False):
        assert ledger_entries_push_due() == 1
    [item] = _items(shop)
    assert LedgerEntry.objects.get(account=shop.account).stripe_invoice_item_id == item.id


@pytest.mark.django_db(transaction=True)
def test_two_workers_rating_at_once_write_one_entry_per_period(sandbox, owner, stripe_client):
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    owner.stripe = stripe_client
    _subscribe(owner, "pro", "month")
    _report(owner.account, 2100)
    outcomes, errors = [], []
    with time_machine.travel(_after_window(owner.account), tick=False):
        barrier = threading.Barrier(2)

        def work():
            try:
                barrier.wait()
                outcomes.append(usage_periods_rate_closed(chunk_size=1))
            except Exception as error:
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors and sorted(outcomes) == [0, 1]
    assert LedgerEntry.objects.filter(account=owner.account).count() == 1


def test_ops_repush_of_a_stuck_entry_needs_a_reason_cannot_double_bill_and_is_audited(
    shop, monkeypatch, staff_user, client
):
    shop.subscribe()
    _report(shop.account, 2005)
    when = _after_window(shop.account)
    with time_machine.travel(when, tick=False):
        usage_periods_rate_closed()
        with monkeypatch.context() as patch:
            _crash_after_stripe(patch)
            with pytest.raises(SystemExit):
                ledger_entries_push_due()
    entry = LedgerEntry.objects.get(account=shop.account)
    url = "/admin/billing/ledgerentry/"
    with time_machine.travel(when + timedelta(seconds=30), tick=False):
        client.force_login(staff_user)
        # Within the crashed push's lease: a second writer now could make a second item, so it is refused.
        client.post(url, {"action": "repush", "_selected_action": [entry.pk], "reason": "stuck"}, follow=True)
        assert LedgerEntry.objects.get(pk=entry.pk).state == LedgerState.RATED
    with time_machine.travel(when + PUSH_LEASE + timedelta(seconds=1), tick=False):
        client.force_login(staff_user)
        page = client.get(url)
        assert page.status_code == 200 and "Rated" in page.content.decode()
        client.post(url, {"action": "repush", "_selected_action": [entry.pk]}, follow=True)  # no reason: refused
        assert not AuditLog.objects.filter(action="ledger.repushed").exists()
        for _ in range(2):  # a second click finds the item at Stripe and refuses
            client.post(
                url,
                {"action": "repush", "_selected_action": [entry.pk], "reason": "Push crashed (ticket 42)"},
                follow=True,
            )
    [item] = _items(shop)
    entry.refresh_from_db()
    assert (entry.state, entry.stripe_invoice_item_id) == (LedgerState.PUSHED, item.id)
    audit = AuditLog.objects.get(action="ledger.repushed")
    assert audit.actor == staff_user and audit.after["stripe_invoice_item_id"] == item.id
    assert audit.reason == "Push crashed (ticket 42)"
    assert client.get(f"/admin/billing/usageperiod/{entry.period_id}/change/").status_code == 200


def test_an_annual_plans_monthly_overage_gets_its_own_paid_invoice(shop):
    shop.subscribe("basic", "year")
    _report(shop.account, 310)  # Basic: 300 included per month, then 30¢
    with time_machine.travel(_after_window(shop.account), tick=False):
        tasks.rate_closed_usage_periods()
    entry = LedgerEntry.objects.get(account=shop.account)
    assert entry.amount_cents == 300 and entry.stripe_invoice_id
    invoice = shop.stripe.v1.invoices.retrieve(entry.stripe_invoice_id)
    assert (invoice.status, invoice.amount_paid, invoice.metadata["ledger_entry_id"]) == ("paid", 300, str(entry.pk))
    ledger_entries_mark_invoiced(invoice_id=invoice.id)  # what the invoice.paid webhook does
    entry.refresh_from_db()
    assert entry.state == LedgerState.INVOICED
    assert UsagePeriod.objects.get(account=shop.account).state == UsagePeriodState.RATED
