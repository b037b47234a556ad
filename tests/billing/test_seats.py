"""A per-seat plan: the Stripe subscription's quantity follows the active members, with proration."""

import pytest
from django.core.management import call_command

from accounts import services as accounts_services
from accounts.models import Account
from billing.models import CheckoutAttempt
from billing.subscriptions.checkout import checkout_completed, checkout_start
from billing.subscriptions.seats import subscription_sync_seats
from plans.models import Plan, PlanPrice
from tests.factories import MembershipFactory


@pytest.fixture
def per_seat_subscriber(sandbox, catalog, owner):
    """The owner's account on Pro priced per seat, with one agent: a live subscription for 2 seats."""
    Plan.objects.filter(code="pro").update(per_seat=True)
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    MembershipFactory(account=owner.account, role="agent")
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)  # charged at once, no trial
    owner.account.refresh_from_db()
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    attempt = checkout_start(account=owner.account, actor=owner.user, plan_price=price)
    reply = sandbox.request(
        "POST", f"/_sandbox/checkout/{attempt.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    assert reply.status == 200, reply.body
    checkout_completed(session_id=attempt.stripe_session_id)  # what the webhook handler runs
    return owner


def _quantity(stripe_client, account):
    subscription_id = CheckoutAttempt.objects.get(account=account).stripe_session_id
    session = stripe_client.v1.checkout.sessions.retrieve(subscription_id)
    subscription = stripe_client.v1.subscriptions.retrieve(session.subscription)
    return subscription["items"]["data"][0]["quantity"], subscription


def test_checkout_buys_one_seat_per_active_member(per_seat_subscriber, stripe_client):
    quantity, subscription = _quantity(stripe_client, per_seat_subscriber.account)
    assert quantity == 2
    assert subscription.status == "active"
    per_seat_subscriber.account.refresh_from_db()
    assert per_seat_subscriber.account.plan.code == "pro"


def test_a_new_member_raises_the_quantity_with_proration_and_a_removal_lowers_it(
    per_seat_subscriber, stripe_client, django_capture_on_commit_callbacks
):
    owner = per_seat_subscriber
    with django_capture_on_commit_callbacks(execute=True):
        invitation = accounts_services.invitation_create(
            account=owner.account, actor=owner.user, email="third@shop.example"
        )
    invitee = MembershipFactory.build().user
    invitee.email = "third@shop.example"
    invitee.save()
    with django_capture_on_commit_callbacks(execute=True):
        membership = accounts_services.invitation_accept(invitation=invitation, user=invitee)

    quantity, subscription = _quantity(stripe_client, owner.account)
    assert quantity == 3
    # Invoiced at once (a renewal may be months away, or never come): nothing waits pending.
    assert not stripe_client.v1.invoice_items.list(params={"customer": subscription.customer, "pending": True}).data
    [added] = _seat_invoices(stripe_client, subscription)
    assert added.status == "paid" and added.amount_paid > 0  # a third seat, charged for the rest of the period
    details = [
        line.parent.get("invoice_item_details") or line.parent.get("subscription_item_details")
        for line in added.lines.data
    ]
    assert details and all(detail.proration for detail in details)

    with django_capture_on_commit_callbacks(execute=True):
        accounts_services.membership_deactivate(membership=membership, actor=owner.user)
    assert _quantity(stripe_client, owner.account)[0] == 2
    removed, _ = _seat_invoices(stripe_client, subscription)
    assert removed.total < 0 and removed.amount_due == 0  # the unused seat is credited, not charged
    customer = stripe_client.v1.customers.retrieve(subscription.customer)
    assert customer.balance == removed.total  # to the customer's balance, for the next invoice


def _seat_invoices(stripe_client, subscription):
    invoices = stripe_client.v1.invoices.list(params={"customer": subscription.customer, "limit": 100}).data
    return [invoice for invoice in invoices if invoice.billing_reason == "subscription_update"]


def test_the_same_change_synced_twice_writes_once(per_seat_subscriber, stripe_client):
    owner = per_seat_subscriber
    MembershipFactory(account=owner.account, role="agent")
    assert subscription_sync_seats(account=owner.account, change_id=4242) == 3
    assert subscription_sync_seats(account=owner.account, change_id=4242) == 3
    quantity, subscription = _quantity(stripe_client, owner.account)
    assert quantity == 3
    assert len(_seat_invoices(stripe_client, subscription)) == 1  # one change, one invoice


def test_a_flat_plan_never_touches_the_quantity(sandbox, catalog, owner):
    assert subscription_sync_seats(account=owner.account, change_id=1) is None


def test_a_pending_invitation_is_not_billed_until_accepted(per_seat_subscriber, stripe_client):
    # Billed seats = active members: an invitation holds a seat against the limit but nobody works in it yet.
    owner = per_seat_subscriber
    accounts_services.invitation_create(account=owner.account, actor=owner.user, email="later@shop.example")
    assert subscription_sync_seats(account=owner.account, change_id=77) == 2
    assert _quantity(stripe_client, owner.account)[0] == 2
