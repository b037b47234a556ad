"""Pushing the ledger to the sandbox: backoff and a visible `failed` state, keys that mean the same thing in
every database, terms that are not retroactive, and staff's re-push (a reason, a key of its own, a read-back).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError
from django.utils import timezone

from accounts.errors import Conflict, DomainError
from accounts.models import AuditLog
from billing import tasks
from billing.ledger.push import MAX_PUSH_ATTEMPTS, PUSH_BACKOFF_CAP, ledger_entries_push_due, ledger_entry_repush
from billing.ledger.rate import usage_periods_rate_closed
from billing.models import LedgerEntry, LedgerState, UsagePeriod
from billing.stripe.customers import customer_ensure
from billing.subscriptions.sync import subscription_refresh
from billing.usage.ingest import usage_events_record
from plans.models import Entitlement, PlanPrice
from tests.billing.usage_helpers import event, subscribe

WINDOW = timedelta(hours=72, minutes=1)


@pytest.fixture
def shop(sandbox, owner, stripe_client):
    """The owner's account subscribed to Pro monthly at the sandbox, mirrored."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    customer = customer_ensure(account=owner.account)
    stripe_client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    price = PlanPrice.objects.get(plan__code="pro", interval="month", currency="usd")
    subscription = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.stripe_price_id}]}
    )
    subscription_refresh(subscription_id=subscription.id)
    owner.stripe, owner.customer, owner.subscription_id = stripe_client, customer, subscription.id
    return owner


def _report(account, quantity, *, key="k", at=None):
    event_ = event(key, at=at or timezone.now(), account=account, quantity=quantity)
    assert usage_events_record(events=[event_], caller_account=None).counts["new"] == 1


def _rated(account) -> LedgerEntry:
    period = UsagePeriod.objects.get(account=account)
    usage_periods_rate_closed(now=period.end + WINDOW)
    return LedgerEntry.objects.get(account=account)


def _items(shop):
    return list(shop.stripe.v1.invoice_items.list(params={"customer": shop.customer.id, "limit": 100}).data)


def test_a_push_that_keeps_failing_backs_off_then_fails_visibly_and_never_blocks_newer_entries(
    shop, outsider, staff_user, client
):
    # The outsider's subscription is in our mirror only: its customer does not exist at Stripe, so every
    # push of its entry is refused there.
    subscribe(outsider.account, plan="pro", anchor=timezone.now() - timedelta(days=2))
    _report(outsider.account, 2001)
    failing = _rated(outsider.account)
    _report(shop.account, 2001)
    newer = _rated(shop.account)
    assert failing.pk < newer.pk

    now = UsagePeriod.objects.get(account=shop.account).end + WINDOW
    assert ledger_entries_push_due(now=now) == 1
    newer.refresh_from_db()
    assert newer.state == LedgerState.PUSHED  # not held back by the older, failing entry
    delays = []
    for attempt in range(1, MAX_PUSH_ATTEMPTS):  # the last attempt is the 12th, below
        failing.refresh_from_db()
        assert (failing.state, failing.push_attempts) == (LedgerState.RATED, attempt)
        assert failing.last_error
        delays.append(failing.next_push_at - now)
        assert ledger_entries_push_due(now=now + delays[-1] - timedelta(seconds=1)) == 0  # not yet due
        now += delays[-1]
        assert ledger_entries_push_due(now=now) == 0
    failing.refresh_from_db()
    assert (failing.state, failing.next_push_at, failing.push_attempts) == (LedgerState.FAILED, None, 12)
    for delay, minutes in zip(delays, [1, 2, 4, 8, 16, 32, 60, 60], strict=False):  # plus up to a tenth of jitter
        assert timedelta(minutes=minutes) <= delay <= timedelta(minutes=minutes) * 1.1
    assert PUSH_BACKOFF_CAP <= max(delays) <= PUSH_BACKOFF_CAP * 1.1
    assert ledger_entries_push_due(now=now + timedelta(days=1)) == 0  # failed: left for staff

    with time_machine.travel(now, tick=False):
        client.force_login(staff_user)
        page = client.get("/admin/billing/ledgerentry/?state__exact=failed").content.decode()
    assert outsider.account.name in page and shop.account.name not in page


def test_the_ledger_key_is_the_subscription_period_and_kind_not_a_local_id(shop):
    _report(shop.account, 2010)
    entry = _rated(shop.account)
    period = entry.period
    tasks.push_ledger_entries()
    [item] = _items(shop)
    key = f"usage_overage:{shop.subscription_id}:{int(period.start.timestamp())}"
    assert entry.ledger_key == key
    assert item.metadata["ledger_key"] == key
    assert (item.metadata["subscription_id"], item.metadata["period_start"], item.metadata["period_end"]) == (
        shop.subscription_id,
        str(int(period.start.timestamp())),
        str(int(period.end.timestamp())),
    )


def test_terms_in_force_when_the_period_opened_rate_it_after_a_catalog_edit(owner):
    subscribe(owner.account, plan="pro", anchor=timezone.now() - timedelta(days=2))
    _report(owner.account, 2100)
    Entitlement.objects.filter(plan__code="pro", feature="tickets").update(included_units=100, overage_cents=99)
    entry = _rated(owner.account)
    assert entry.amount_cents == 100 * 20  # Pro's terms when the period opened: 2,000 included, 20c


def test_periods_of_an_account_never_overlap(owner):
    subscribe(owner.account, plan="pro", anchor=timezone.now() - timedelta(days=2))
    _report(owner.account, 1)
    period = UsagePeriod.objects.get(account=owner.account)
    with pytest.raises(IntegrityError):
        UsagePeriod.objects.create(
            account=owner.account,
            start=period.start + timedelta(days=1),
            end=period.end + timedelta(days=1),
            subscription_id=period.subscription_id,
            plan_price=period.plan_price,
        )


def test_a_repush_of_an_item_deleted_at_stripe_writes_a_new_one_under_its_own_key_and_confirms_it(shop, staff_user):
    _report(shop.account, 2010)
    entry = _rated(shop.account)
    tasks.push_ledger_entries()
    entry.refresh_from_db()
    lost = entry.stripe_invoice_item_id
    shop.stripe.v1.invoice_items.delete(lost)  # deleted at Stripe before invoicing
    with pytest.raises(DomainError):
        ledger_entry_repush(entry=entry, actor=staff_user, reason=" ")
    entry = ledger_entry_repush(entry=entry, actor=staff_user, reason="Item deleted at Stripe by mistake")
    [item] = _items(shop)  # a real new item, not the first key's replay of the deleted one
    assert item.id != lost and item.id == entry.stripe_invoice_item_id
    assert (item.amount, entry.state, entry.repush_count) == (200, LedgerState.PUSHED, 1)
    audit = AuditLog.objects.get(action="ledger.repushed")
    assert (audit.reason, audit.before["item"], audit.after["stripe_invoice_item_id"]) == (
        "Item deleted at Stripe by mistake",
        lost,
        item.id,
    )
    with pytest.raises(Conflict):  # Stripe holds it: a second re-push is refused, nothing written
        ledger_entry_repush(entry=entry, actor=staff_user, reason="again")
    LedgerEntry.objects.filter(pk=entry.pk).update(state=LedgerState.INVOICED)
    with pytest.raises(Conflict):
        ledger_entry_repush(entry=entry, actor=staff_user, reason="invoiced")
    assert len(_items(shop)) == 1
