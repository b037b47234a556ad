"""A Checkout Session that looks expired is asked of Stripe before it is discarded.

No live server runs: Stripe's checkout.session.completed webhook is "late" (never delivered), which is
the case where discarding on our own clock would let a second session make a second live subscription.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.errors import Conflict
from accounts.models import Account, AccountStatus
from billing.models import CheckoutAttempt, CheckoutStatus
from billing.subscriptions.checkout import checkout_start
from billing.subscriptions.selectors import customer_for_account
from plans.models import PlanPrice


@pytest.fixture
def merchant(sandbox, catalog, owner):
    call_command("sync_plans", stdout=StringIO())
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    owner.account.refresh_from_db()
    return owner


def _price(plan, interval="month"):
    return PlanPrice.objects.get(plan__code=plan, interval=interval, currency="usd")


def _looks_expired(attempt):
    CheckoutAttempt.objects.filter(pk=attempt.pk).update(expires_at=timezone.now() - timedelta(minutes=1))


def _live_subscriptions(stripe_client, account):
    customer = customer_for_account(account=account).id
    subscriptions = stripe_client.v1.subscriptions.list(params={"customer": customer, "status": "all"}).data
    return [s.id for s in subscriptions if s.status in ("active", "trialing", "past_due")]


@pytest.mark.parametrize("plan", ["pro", "basic"])  # the same price again, and another one
def test_a_session_completed_at_stripe_whose_webhook_is_late_is_not_discarded(merchant, sandbox, stripe_client, plan):
    first = checkout_start(account=merchant.account, actor=merchant.user, plan_price=_price("pro"))
    sandbox.request(
        "POST", f"/_sandbox/checkout/{first.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    _looks_expired(first)

    with pytest.raises(Conflict) as refused:
        checkout_start(account=merchant.account, actor=merchant.user, plan_price=_price(plan))

    assert refused.value.code == "already_subscribed"
    first.refresh_from_db()
    assert first.status == CheckoutStatus.COMPLETED  # what the late webhook would have recorded
    assert CheckoutAttempt.objects.filter(account=merchant.account).count() == 1  # no second session opened
    merchant.account.refresh_from_db()
    assert merchant.account.status == AccountStatus.ACTIVE
    assert len(_live_subscriptions(stripe_client, merchant.account)) == 1
    with pytest.raises(Conflict):  # and from now on the mirror's subscription refuses any new start
        checkout_start(account=merchant.account, actor=merchant.user, plan_price=_price("basic"))


def test_a_session_that_looks_expired_but_is_open_at_stripe_is_expired_there_first(merchant, stripe_client):
    first = checkout_start(account=merchant.account, actor=merchant.user, plan_price=_price("pro"))
    _looks_expired(first)

    second = checkout_start(account=merchant.account, actor=merchant.user, plan_price=_price("pro"))

    assert second.pk != first.pk and second.status == CheckoutStatus.OPEN
    first.refresh_from_db()
    assert first.status == CheckoutStatus.EXPIRED
    assert stripe_client.v1.checkout.sessions.retrieve(first.stripe_session_id).status == "expired"


def test_each_attempt_keys_its_stripe_writes_by_its_own_uuid(merchant):
    first = checkout_start(account=merchant.account, actor=merchant.user, plan_price=_price("pro"))
    second = checkout_start(account=merchant.account, actor=merchant.user, plan_price=_price("basic"))
    assert first.idempotency_key == f"checkout:{first.key}"
    assert first.idempotency_key != second.idempotency_key
