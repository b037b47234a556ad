"""Lost webhooks: Stripe's subscription changes and nothing reaches us (no live server, so no delivery).

Reconciliation compares every field billing depends on with Stripe, heals by re-syncing from Stripe, and
says how many it healed; the next run finds nothing.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Account
from billing.models import DifferenceKind
from billing.reconciliation.run import reconciliation_run
from billing.subscriptions.selectors import subscription_summary
from plans.models import PlanPrice
from tests.billing.reconciliation_helpers import subscribe_through_checkout


@pytest.fixture
def subscriber(sandbox, catalog, owner):
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    owner.account.refresh_from_db()
    return subscribe_through_checkout(sandbox, owner)


def _kinds(run):
    return sorted(run.differences.values_list("kind", flat=True))


def test_a_plan_interval_seats_and_cancel_flag_changed_without_webhooks_are_healed_and_counted(
    subscriber, stripe_client
):
    account = subscriber.account
    subscription_id = subscription_summary(account=account).id
    item_id = stripe_client.v1.subscriptions.retrieve(subscription_id)["items"]["data"][0]["id"]
    advanced_annual = PlanPrice.objects.get(plan__code="advanced", interval="year", currency="usd")
    stripe_client.v1.subscriptions.update(
        subscription_id,
        params={
            "items": [{"id": item_id, "price": advanced_annual.stripe_price_id, "quantity": 3}],
            "proration_behavior": "none",
        },
    )
    stripe_client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True})
    stale = subscription_summary(account=account)
    assert (stale.plan_price.plan.code, stale.quantity, stale.cancel_at_period_end) == ("pro", 1, False)

    run = reconciliation_run()

    assert _kinds(run) == [
        DifferenceKind.CANCEL_FLAG_DRIFT,
        DifferenceKind.INTERVAL_DRIFT,
        DifferenceKind.PLAN_DRIFT,
        DifferenceKind.QUANTITY_DRIFT,
    ]
    rows = {d.kind: (d.expected, d.actual, d.healed) for d in run.differences.all()}
    assert rows[DifferenceKind.PLAN_DRIFT] == ("advanced", "pro", True)
    assert rows[DifferenceKind.INTERVAL_DRIFT] == ("year", "month", True)
    assert rows[DifferenceKind.QUANTITY_DRIFT] == ("3", "1", True)
    assert rows[DifferenceKind.CANCEL_FLAG_DRIFT] == ("True", "False", True)
    assert (run.differences_found, run.differences_healed, run.differences_unhealed) == (4, 4, 0)

    healed = subscription_summary(account=account)
    assert (healed.plan_price, healed.quantity, healed.cancel_at_period_end) == (advanced_annual, 3, True)
    account.refresh_from_db()
    assert account.plan.code == "advanced"  # entitlements and new usage periods follow the plan in force
    assert _kinds(reconciliation_run()) == []


def test_a_trial_end_moved_at_stripe_is_healed(sandbox, catalog, owner, stripe_client):
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=timezone.now() + timedelta(days=10))
    owner.account.refresh_from_db()
    subscribe_through_checkout(sandbox, owner)
    summary = subscription_summary(account=owner.account)
    assert summary.status == "trialing"
    later = summary.trial_end + timedelta(days=7)
    stripe_client.v1.subscriptions.update(
        summary.id, params={"trial_end": int(later.timestamp()), "proration_behavior": "none"}
    )

    run = reconciliation_run()

    [moved] = run.differences.all()
    assert (moved.kind, moved.expected, moved.actual, moved.healed) == (
        DifferenceKind.TRIAL_END_DRIFT,
        later.isoformat(),
        summary.trial_end.isoformat(),
        True,
    )
    assert subscription_summary(account=owner.account).trial_end == later


def test_the_command_reports_differences_by_kind_and_how_many_were_healed(subscriber, stripe_client):
    subscription_id = subscription_summary(account=subscriber.account).id
    stripe_client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True})
    out = StringIO()
    call_command("reconcile", stdout=out)
    text = out.getvalue()
    assert "differences: 1 (healed: 1, unhealed: 0)" in text
    assert "cancel_flag_drift: 1 (healed: 1, unhealed: 0)" in text


def test_an_account_left_on_another_plan_than_its_subscription_is_healed(subscriber, catalog):
    Account.objects.filter(pk=subscriber.account.pk).update(plan=catalog.get(code="basic"))  # a handler that failed

    run = reconciliation_run()

    [drift] = run.differences.all()
    assert (drift.kind, drift.expected, drift.actual, drift.healed) == (
        DifferenceKind.ACCOUNT_PLAN_DRIFT,
        "pro",
        "basic",
        True,
    )
    subscriber.account.refresh_from_db()
    assert subscriber.account.plan.code == "pro"
    assert _kinds(reconciliation_run()) == []
