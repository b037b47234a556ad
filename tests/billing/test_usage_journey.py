"""A month of a merchant's usage on a sandbox test clock, billed on the next renewal to the cent.

The web app runs in pytest-django's live server: the sandbox's signed webhooks (subscription, invoices)
reach dj-stripe's view and our handlers, the `invoice.paid` one settling the ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from django.core.management import call_command
from djstripe import models as djstripe_models

from accounts.models import AccountStatus
from billing import tasks
from billing.models import LedgerEntry, LedgerState, UsagePeriod
from billing.stripe.endpoints import webhook_endpoint_ensure
from billing.subscriptions.sync import invoice_refresh
from billing.usage.ingest import usage_events_record
from plans.models import PlanPrice
from tests.billing.clock_helpers import clocked_customer
from tests.billing.usage_helpers import event


def _flush(sandbox):
    sandbox.request("POST", "/_sandbox/webhooks/flush", api_key=None)


def test_a_month_of_usage_is_rated_after_the_window_and_paid_on_the_next_renewal(
    sandbox, stripe_client, live_server, owner
):
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    # Our clock follows the test clock, a month ahead of the sandbox's real-time signatures.
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(djstripe_tolerance=0)  # 0: no age check
    start = datetime.now(tz=UTC).replace(microsecond=0)
    clock, customer = clocked_customer(stripe_client, owner.account, start=start)
    pro = PlanPrice.objects.get(plan__code="pro", interval="month")
    subscription = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": pro.stripe_price_id}]}
    )
    _flush(sandbox)
    owner.account.refresh_from_db()
    assert owner.account.status == AccountStatus.ACTIVE

    def advance(to: datetime, traveller):
        stripe_client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": int(to.timestamp())})
        traveller.move_to(to)
        _flush(sandbox)

    with time_machine.travel(start + timedelta(days=10), tick=False) as traveller:
        advance(start + timedelta(days=10), traveller)
        at = start + timedelta(days=9)
        tickets = [event(f"t{i}", at=at, account=owner.account, quantity=3) for i in range(700)]  # 2,100
        resolutions = [
            event(f"r{i}", at=at, account=owner.account, metric="automated_resolutions", quantity=51) for i in range(10)
        ]  # 510
        for batch in (tickets, resolutions):
            assert usage_events_record(events=batch, caller_account=None).counts["new"] == len(batch)

        period = UsagePeriod.objects.get(account=owner.account)
        advance(period.end + timedelta(hours=72, minutes=5), traveller)
        tasks.rate_closed_usage_periods()  # the beat task: rates, writes the ledger, pushes the overage
        entry = LedgerEntry.objects.get(account=owner.account)
        assert entry.state == LedgerState.PUSHED
        assert entry.amount_cents == 100 * 20 + 10 * 50  # 100 tickets over at 20¢, 10 resolutions at 50¢

        # The first renewal (at the period's end) was already paid, plan fee only; the overage rides on
        # the next one, a month later (finalized and charged an hour after it is drafted).
        next_renewal = datetime.fromtimestamp(
            stripe_client.v1.subscriptions.retrieve(subscription.id)["items"]["data"][0]["current_period_end"], tz=UTC
        )
        advance(next_renewal + timedelta(hours=2), traveller)

    entry.refresh_from_db()
    assert entry.state == LedgerState.INVOICED, entry
    invoice = stripe_client.v1.invoices.retrieve(entry.stripe_invoice_id)
    assert invoice.status == "paid"
    assert invoice.amount_paid == pro.amount_cents + entry.amount_cents == 9900 + 2500
    lines = {line["metadata"].get("ledger_entry_id") for line in invoice.lines.data}
    assert str(entry.pk) in lines
    # The mirror has the paid invoice too, as the billing page shows it.
    assert djstripe_models.Invoice.objects.filter(id=invoice.id).exists() or invoice_refresh(invoice_id=invoice.id)
