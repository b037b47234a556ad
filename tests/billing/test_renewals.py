"""Renewal and trial reminders (email once, and in-app), and a trial that ends without a plan."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from accounts.entitlements import entitlements_for_account
from accounts.models import Account, AccountStatus, AuditLog, Membership
from billing.models import Reminder
from billing.notices.reminders import reminders_send_due, trials_end_due
from billing.subscriptions.checkout import checkout_completed, checkout_start
from billing.subscriptions.selectors import subscription_summary
from outbox.mail import emails_send_due
from plans.models import PlanPrice


def _trial_ending_in(account, delta):
    Account.objects.filter(pk=account.pk).update(trial_ends_at=timezone.now() + delta)
    account.refresh_from_db()
    return account


def test_trial_reminders_go_out_once_at_7_days_and_at_1_day(owner):
    _trial_ending_in(owner.account, timedelta(days=6))
    assert reminders_send_due() == 1
    assert reminders_send_due() == 0
    # The test's transaction never commits, so no send task was queued: beat's relay sends what waits.
    assert emails_send_due() == 1
    [message] = mail.outbox
    assert message.to == [owner.account.billing_email]
    assert "trial ends on" in message.subject
    assert "/pricing/" in message.body
    assert reminders_send_due(now=owner.account.trial_ends_at - timedelta(hours=12)) == 1
    assert sorted(Reminder.objects.values_list("kind", flat=True)) == ["trial_1", "trial_7"]


def test_no_reminder_outside_the_windows(owner):
    _trial_ending_in(owner.account, timedelta(days=8))
    assert reminders_send_due() == 0
    assert mail.outbox == []


def test_a_trial_ending_without_a_plan_suspends_and_keeps_the_data(client, owner, agent):
    _trial_ending_in(owner.account, timedelta(seconds=-1))
    assert trials_end_due() == 1
    assert trials_end_due() == 0
    owner.account.refresh_from_db()
    assert owner.account.status == AccountStatus.SUSPENDED
    assert AuditLog.objects.get(action="account.status_changed").reason == "The trial ended without a plan"
    assert Membership.objects.filter(account=owner.account, is_active=True).count() == 2  # data kept
    assert entitlements_for_account(account=owner.account).features == frozenset()
    emails_send_due()
    assert "trial has ended" in mail.outbox[-1].subject
    page = owner.web(client).get("/dashboard/").content.decode()
    assert "Your free trial has ended" in page and "/pricing/" in page


def test_an_ended_trial_is_reactivated_by_choosing_a_plan(sandbox, owner):
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    _trial_ending_in(owner.account, timedelta(seconds=-1))
    trials_end_due()
    owner.account.refresh_from_db()
    attempt = checkout_start(
        account=owner.account, actor=owner.user, plan_price=PlanPrice.objects.get(plan__code="basic", interval="month")
    )
    sandbox.request(
        "POST", f"/_sandbox/checkout/{attempt.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    checkout_completed(session_id=attempt.stripe_session_id)
    owner.account.refresh_from_db()
    assert (owner.account.status, owner.account.plan.code) == (AccountStatus.ACTIVE, "basic")


@pytest.fixture
def annual_subscriber(sandbox, owner):
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    owner.account.refresh_from_db()
    attempt = checkout_start(
        account=owner.account, actor=owner.user, plan_price=PlanPrice.objects.get(plan__code="pro", interval="year")
    )
    sandbox.request(
        "POST", f"/_sandbox/checkout/{attempt.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    checkout_completed(session_id=attempt.stripe_session_id)
    return owner


def test_annual_renewal_reminders_at_30_and_7_days_and_in_app(client, annual_subscriber):
    renews_at = subscription_summary(account=annual_subscriber.account).current_period_end
    assert reminders_send_due(now=renews_at - timedelta(days=40)) == 0
    assert reminders_send_due(now=renews_at - timedelta(days=20)) == 1
    assert reminders_send_due(now=renews_at - timedelta(days=19)) == 0
    assert reminders_send_due(now=renews_at - timedelta(days=5)) == 1
    assert emails_send_due() == 2
    assert [m.subject for m in mail.outbox] == [f"Your Pro plan renews on {renews_at:%d %B %Y}"] * 2
    assert "990.00 USD" in mail.outbox[0].body
    annual_subscriber.web(client)
    assert "Your annual plan renews on" not in client.get("/billing/").content.decode()
    with time_machine.travel(renews_at - timedelta(days=10)):
        annual_subscriber.web(client)  # a fresh session: the first one has expired by then
        assert "Your annual plan renews on" in client.get("/billing/").content.decode()
