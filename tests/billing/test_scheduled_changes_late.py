"""A downgrade found after its boundary passed (the renewal already invoiced on the old price) is applied at
once with proration and audited, never silently: amounts from the catalog, through the sandbox's test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from djstripe import models as djstripe_models

from accounts.models import Account, AuditLog
from billing.models import PlanChangeStatus
from billing.stripe.endpoints import webhook_endpoint_ensure
from billing.subscriptions.changes import scheduled_changes_apply_due, subscription_change, subscription_change_preview
from plans.models import PlanPrice
from tests.billing.clock_helpers import clocked_customer
from tests.billing.test_dunning import _advance, _flush


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
