"""A downgrade found after its boundary passed (the renewal already invoiced on the old price) is applied at
once with proration and audited, never silently: amounts from the catalog, through the sandbox's test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from djstripe import models as djstripe_models

from accounts.models import Account, AuditLog
from billing.ledger.rate import usage_periods_rate_closed
from billing.models import LedgerEntry, PlanChangeStatus, UsagePeriod
from billing.stripe.endpoints import webhook_endpoint_ensure
from billing.subscriptions.changes import scheduled_changes_apply_due, subscription_change, subscription_change_preview
from billing.usage.ingest import usage_events_record
from plans.models import PlanPrice
from tests.billing.clock_helpers import clocked_customer
from tests.billing.test_dunning import _advance, _flush
from tests.billing.usage_helpers import event


@pytest.fixture
def paying(sandbox, stripe_client, live_server, owner):
    """The owner's account paying Pro monthly with a working card, on a sandbox test clock."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(djstripe_tolerance=0)
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    start = datetime.now(tz=UTC).replace(microsecond=0)
    clock, customer = clocked_customer(stripe_client, owner.account, start=start)
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    subscription = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.stripe_price_id}]}
    )
    _flush(sandbox)
    owner.account.refresh_from_db()
    owner.clock, owner.customer, owner.subscription, owner.sandbox = clock, customer, subscription, sandbox
    owner.renewal = datetime.fromtimestamp(subscription["items"]["data"][0]["current_period_end"], tz=UTC)
    yield owner
    _flush(sandbox)


def _invoices(stripe_client, subscription_id):
    data = stripe_client.v1.invoices.list(params={"subscription": subscription_id, "limit": 20}).data
    return sorted(data, key=lambda i: i.created)


def test_a_downgrade_found_after_its_boundary_is_prorated_at_once_and_audited(paying, stripe_client):
    basic = PlanPrice.objects.get(plan__code="basic", interval="month")
    preview = subscription_change_preview(account=paying.account, actor=paying.user, plan_price=basic)
    change = subscription_change(account=paying.account, actor=paying.user, token=preview.token)["scheduled"]
    assert change.effective_at == paying.renewal

    # The beat was down over the boundary: Stripe renewed on Pro (9900) and the change is still waiting.
    late = paying.renewal + timedelta(hours=2)
    with time_machine.travel(late, tick=False) as traveller:
        _advance(paying, stripe_client, late, traveller)
        renewal = _invoices(stripe_client, paying.subscription.id)[-1]
        assert (renewal.amount_paid, renewal.billing_reason) == (9900, "subscription_cycle")

        assert scheduled_changes_apply_due() == 1
        assert scheduled_changes_apply_due() == 0
        _flush(paying.sandbox)

    change.refresh_from_db()
    assert (change.status, change.applied_at) == (PlanChangeStatus.APPLIED, late)
    audit = AuditLog.objects.get(action="subscription.downgraded_late")
    assert audit.after == {
        "price": basic.lookup_key,
        "boundary": paying.renewal.isoformat(),
        "applied_at": late.isoformat(),
    }
    paying.account.refresh_from_db()
    assert paying.account.plan.code == "basic"  # in force now: the boundary has passed

    item = stripe_client.v1.subscriptions.retrieve(paying.subscription.id)["items"]["data"][0]
    start, end = item["current_period_start"], item["current_period_end"]
    assert (item["price"]["id"], start) == (basic.stripe_price_id, int(paying.renewal.timestamp()))
    remaining = (end - late.timestamp()) / (end - start)
    credit, charge = round(9900 * remaining), round(4900 * remaining)
    prorations = sorted(
        i.amount for i in stripe_client.v1.invoice_items.list(params={"customer": paying.customer.id}).data
    )
    assert prorations == [-credit, charge]

    # The next renewal: a month of Basic, plus the rest of this period at Basic, less the unused Pro time. Two
    # hours into the period, the credit is worth more than that: the invoice is 0 and the rest is the customer's.
    next_renewal = datetime.fromtimestamp(end, tz=UTC) + timedelta(hours=2)
    with time_machine.travel(next_renewal, tick=False) as traveller:
        _advance(paying, stripe_client, next_renewal, traveller)
        assert scheduled_changes_apply_due() == 0
    total = 4900 + charge - credit
    invoice = _invoices(stripe_client, paying.subscription.id)[-1]
    assert (invoice.total, invoice.amount_due, invoice.status) == (total, max(total, 0), "paid")
    assert stripe_client.v1.customers.retrieve(paying.customer.id).balance == min(total, 0)
    assert len(_invoices(stripe_client, paying.subscription.id)) == 3  # first, renewal on Pro, renewal on Basic


def test_a_late_event_after_a_downgrade_went_on_is_rated_on_the_plan_its_period_was_paid_on(paying, stripe_client):
    """The downgrade goes on Stripe in the period's last half hour; an event that occurred before the boundary
    arrives after it and is the period's first: the period it creates is still Pro's (paid for), not Basic's.
    Pro includes 2,000 tickets then 20c each; Basic 300 then 30c."""
    basic = PlanPrice.objects.get(plan__code="basic", interval="month")
    preview = subscription_change_preview(account=paying.account, actor=paying.user, plan_price=basic)
    subscription_change(account=paying.account, actor=paying.user, token=preview.token)
    applied = paying.renewal - timedelta(minutes=30)
    with time_machine.travel(applied, tick=False) as traveller:
        _advance(paying, stripe_client, applied, traveller)
        assert scheduled_changes_apply_due() == 1
        _flush(paying.sandbox)
        after = paying.renewal + timedelta(hours=2)
        _advance(paying, stripe_client, after, traveller)
        late = event("late", at=paying.renewal - timedelta(hours=1), account=paying.account, quantity=2010)
        [result] = usage_events_record(events=[late], caller_account=None).results
        assert result["status"] == "new"
        [period] = UsagePeriod.objects.filter(account=paying.account)
        assert (period.end, period.plan_price.plan.code) == (paying.renewal, "pro")
        assert period.terms["metrics"]["tickets"]["included"] == 2000
        traveller.move_to(paying.renewal + timedelta(hours=settings.TOLLBOOTH_USAGE_FINALITY_HOURS, minutes=1))
        assert usage_periods_rate_closed() == 1
    assert LedgerEntry.objects.get(period=period).amount_cents == 10 * 20
