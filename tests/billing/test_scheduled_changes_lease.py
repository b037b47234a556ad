"""Scheduled downgrades: claimed under a lease and confirmed only after Stripe answers; replaced or withdrawn
by a later change; keys in Stripe's terms."""

from __future__ import annotations

from datetime import timedelta

from accounts.models import AuditLog
from billing.models import PlanChangeStatus, ScheduledPlanChange
from billing.stripe.client import idempotent
from billing.subscriptions.changes import scheduled_changes_apply_due, subscription_change, subscription_change_preview
from billing.subscriptions.scheduled import CLAIM_LEASE, scheduled_change_key
from tests.billing.test_plan_changes import _customer, _price, subscriber  # noqa: F401 (the fixture)


def _downgrade(persona, code: str) -> ScheduledPlanChange:
    preview = subscription_change_preview(account=persona.account, actor=persona.user, plan_price=_price(code))
    return subscription_change(account=persona.account, actor=persona.user, token=preview.token)["scheduled"]


def _stripe_price(stripe_client, change) -> str:
    return stripe_client.v1.subscriptions.retrieve(change.stripe_subscription_id)["items"]["data"][0]["price"]["id"]


def test_a_worker_killed_after_claiming_leaves_the_change_for_the_next_run_after_the_lease(
    subscriber,  # noqa: F811
    stripe_client,
):
    change = _downgrade(subscriber, "basic")
    now = change.effective_at - timedelta(minutes=50)
    # What a claim does, with the worker dying before it reached Stripe.
    ScheduledPlanChange.objects.filter(pk=change.pk).update(claimed_at=now)

    assert scheduled_changes_apply_due(now=now + timedelta(minutes=1)) == 0  # still leased
    change.refresh_from_db()
    assert change.status == PlanChangeStatus.SCHEDULED
    assert _stripe_price(stripe_client, change) == _price("pro").stripe_price_id

    assert scheduled_changes_apply_due(now=now + CLAIM_LEASE + timedelta(seconds=1)) == 1
    change.refresh_from_db()
    assert (change.status, change.applied_at) == (PlanChangeStatus.APPLIED, now + CLAIM_LEASE + timedelta(seconds=1))
    assert _stripe_price(stripe_client, change) == _price("basic").stripe_price_id
    assert scheduled_changes_apply_due(now=change.effective_at) == 0  # applied once


def test_a_worker_killed_after_stripe_answered_is_confirmed_not_written_twice(subscriber, stripe_client):  # noqa: F811
    change = _downgrade(subscriber, "basic")
    now = change.effective_at - timedelta(minutes=50)
    ScheduledPlanChange.objects.filter(pk=change.pk).update(claimed_at=now)
    # The dead worker's write, exactly as it sends it, did reach Stripe.
    data = stripe_client.v1.subscriptions.retrieve(change.stripe_subscription_id)
    item = data["items"]["data"][0]
    stripe_client.v1.subscriptions.update(
        change.stripe_subscription_id,
        params={
            "items": [{"id": item["id"], "price": _price("basic").stripe_price_id, "quantity": item["quantity"]}],
            "proration_behavior": "none",
        },
        options=idempotent(scheduled_change_key(change, late=False)),
    )

    assert scheduled_changes_apply_due(now=now + CLAIM_LEASE + timedelta(minutes=1)) == 1
    change.refresh_from_db()
    assert change.status == PlanChangeStatus.APPLIED
    audit = AuditLog.objects.get(action="subscription.downgraded")
    assert audit.reason == "found on Stripe after an interrupted run"
    pending = stripe_client.v1.invoice_items.list(params={"customer": _customer(subscriber)}).data
    assert [i for i in pending if i.proration] == []


def test_a_new_downgrade_replaces_the_scheduled_one_and_an_upgrade_withdraws_it(subscriber, stripe_client):  # noqa: F811
    first = _downgrade(subscriber, "basic")
    second = _downgrade(subscriber, "starter")
    first.refresh_from_db()
    assert first.status == PlanChangeStatus.CANCELED
    assert ScheduledPlanChange.objects.get(status=PlanChangeStatus.SCHEDULED).pk == second.pk
    replaced = AuditLog.objects.get(action="subscription.downgrade_replaced")
    assert replaced.before["price"] == _price("basic").lookup_key

    preview = subscription_change_preview(
        account=subscriber.account, actor=subscriber.user, plan_price=_price("advanced")
    )
    subscription_change(account=subscriber.account, actor=subscriber.user, token=preview.token)
    second.refresh_from_db()
    assert second.status == PlanChangeStatus.CANCELED
    assert AuditLog.objects.get(action="subscription.downgrade_withdrawn").reason == "upgraded to " + (
        _price("advanced").lookup_key
    )
    assert scheduled_changes_apply_due(now=second.effective_at) == 0
    assert _stripe_price(stripe_client, second) == _price("advanced").stripe_price_id


def test_the_scheduled_change_key_is_in_stripes_terms(subscriber):  # noqa: F811
    change = _downgrade(subscriber, "basic")
    key = scheduled_change_key(change, late=False)
    assert key == (
        f"scheduled-plan-change:{change.stripe_subscription_id}:{int(change.effective_at.timestamp())}:"
        f"{_price('basic').stripe_price_id}"
    )
    assert scheduled_change_key(change, late=True) == key + ":late"
