"""Invoices voided or written off close their dunning case; grace re-reads the invoice; a void of a paid
invoice is refused by Stripe and changes nothing here; a cancellation during dunning keeps the case open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import stripe
import time_machine

from accounts.models import Account, AccountStatus, AuditLog
from billing.dunning.card import card_update_session
from billing.dunning.cases import dunning_enforce_grace, dunning_on_invoice_closed
from billing.models import DunningCase, DunningStatus
from billing.subscriptions.cancellation import subscription_cancel
from tests.billing.test_dunning import _advance, _flush, clocked  # noqa: F401 (the fixture)


def _status(owner) -> str:
    return Account.objects.get(pk=owner.account.pk).status


def _failed_renewal(owner, stripe_client, traveller) -> DunningCase:
    _advance(owner, stripe_client, owner.renewal + timedelta(hours=2), traveller)
    return DunningCase.objects.get(account=owner.account)


def test_a_voided_invoice_closes_its_case_and_lifts_the_suspension_it_caused(clocked, stripe_client):  # noqa: F811
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        case = _failed_renewal(clocked, stripe_client, traveller)
        _advance(clocked, stripe_client, clocked.renewal + timedelta(days=7, hours=3), traveller)
        assert dunning_enforce_grace() == 1
        assert _status(clocked) == AccountStatus.SUSPENDED

        stripe_client.v1.invoices.void_invoice(case.stripe_invoice_id)  # ops forgive the invoice
        _flush(clocked.sandbox)
        case.refresh_from_db()
        assert case.status == DunningStatus.VOIDED and case.closed_at is not None
        assert _status(clocked) == AccountStatus.ACTIVE
        assert AuditLog.objects.filter(account=clocked.account, action="dunning.closed_void").count() == 1
        # A closed case never suspends again, however late the grace run.
        traveller.move_to(clocked.renewal + timedelta(days=9))
        assert dunning_enforce_grace() == 0
        assert _status(clocked) == AccountStatus.ACTIVE


def test_a_void_after_the_subscription_ended_closes_the_case_and_the_account_stays_suspended(
    clocked,  # noqa: F811
    stripe_client,
):
    """Found by the journey simulator: the void lifted the suspension of an account whose subscription had been
    canceled meanwhile, so it was active with nothing paid for (reconciliation: expected suspended)."""
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        case = _failed_renewal(clocked, stripe_client, traveller)
        _advance(clocked, stripe_client, clocked.renewal + timedelta(days=7, hours=3), traveller)
        assert dunning_enforce_grace() == 1
        stripe_client.v1.subscriptions.cancel(clocked.subscription.id)  # the merchant leaves; the invoice is owed
        _flush(clocked.sandbox)
        assert _status(clocked) == AccountStatus.SUSPENDED

        stripe_client.v1.invoices.void_invoice(case.stripe_invoice_id)
        _flush(clocked.sandbox)
    case.refresh_from_db()
    assert case.status == DunningStatus.VOIDED
    assert _status(clocked) == AccountStatus.SUSPENDED
    assert not AuditLog.objects.filter(account=clocked.account, reason__endswith="voided").exists()


def _suspended_then_written_off(owner, stripe_client, traveller) -> DunningCase:
    """The renewal fails, the grace period runs out (suspended), then ops mark the invoice uncollectible."""
    case = _failed_renewal(owner, stripe_client, traveller)
    _advance(owner, stripe_client, owner.renewal + timedelta(days=7, hours=3), traveller)
    assert dunning_enforce_grace() == 1
    stripe_client.v1.invoices.mark_uncollectible(case.stripe_invoice_id)
    _flush(owner.sandbox)
    return case


def test_an_uncollectible_invoice_closes_its_case_and_the_suspension_stands(clocked, stripe_client):  # noqa: F811
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        case = _suspended_then_written_off(clocked, stripe_client, traveller)
    case.refresh_from_db()
    assert case.status == DunningStatus.UNCOLLECTIBLE
    assert _status(clocked) == AccountStatus.SUSPENDED  # written off, still not paid: ops decide the account
    invoice = stripe_client.v1.invoices.retrieve(case.stripe_invoice_id)
    assert (invoice.status, invoice.next_payment_attempt) == ("uncollectible", None)


def test_after_a_write_off_the_next_failed_renewal_keeps_the_suspension(clocked, stripe_client):  # noqa: F811
    """Only a payment lifts a suspension: the next renewal failing too (Stripe: past due) leaves the account
    suspended, and its events are answered 2xx (the move suspended -> past due is not one the product makes)."""
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        _suspended_then_written_off(clocked, stripe_client, traveller)
        next_renewal = datetime.fromtimestamp(
            stripe_client.v1.subscriptions.retrieve(clocked.subscription.id)["items"]["data"][0]["current_period_end"],
            tz=UTC,
        )
        _advance(clocked, stripe_client, next_renewal + timedelta(hours=2), traveller)
    assert stripe_client.v1.subscriptions.retrieve(clocked.subscription.id).status == "past_due"
    assert _status(clocked) == AccountStatus.SUSPENDED
    assert list(
        DunningCase.objects.filter(account=clocked.account).order_by("opened_at").values_list("status", flat=True)
    ) == [DunningStatus.UNCOLLECTIBLE, DunningStatus.OPEN]
    deliveries = clocked.sandbox.request("GET", "/_sandbox/deliveries", api_key=None).body["data"]
    assert deliveries and not [d for d in deliveries if (d.get("status_code") or 0) >= 500]


def test_grace_rereads_the_invoice_and_a_lost_void_event_does_not_suspend(clocked, stripe_client):  # noqa: F811
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        case = _failed_renewal(clocked, stripe_client, traveller)
        stripe_client.v1.invoices.void_invoice(case.stripe_invoice_id)  # its webhook not delivered yet
        traveller.move_to(clocked.renewal + timedelta(days=7, hours=3))
        assert dunning_enforce_grace() == 0
        case.refresh_from_db()
        assert case.status == DunningStatus.VOIDED
        assert _status(clocked) == AccountStatus.PAST_DUE
        _flush(clocked.sandbox)  # the late event: a no-op
    assert AuditLog.objects.filter(account=clocked.account, action="dunning.closed_void").count() == 1


def test_voiding_a_paid_invoice_is_refused_and_its_event_path_is_a_no_op(clocked, stripe_client):  # noqa: F811
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        case = _failed_renewal(clocked, stripe_client, traveller)
        url = card_update_session(account=clocked.account, actor=clocked.user)
        session_id = url.rstrip("/").split("/")[-1]
        clocked.sandbox.request(
            "POST", f"/_sandbox/checkout/{session_id}/complete", {"card": "4242424242424242"}, api_key=None
        )
        _flush(clocked.sandbox)
        _flush(clocked.sandbox)
    case.refresh_from_db()
    assert case.status == DunningStatus.RECOVERED
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.void_invoice(case.stripe_invoice_id)
    assert dunning_on_invoice_closed(invoice_id=case.stripe_invoice_id) is None
    case.refresh_from_db()
    assert case.status == DunningStatus.RECOVERED
    assert stripe_client.v1.invoices.retrieve(case.stripe_invoice_id).amount_paid == 9900
    assert not AuditLog.objects.filter(account=clocked.account, action__startswith="dunning.closed").exists()


def test_a_cancellation_during_dunning_is_allowed_and_the_case_stays_open(clocked, stripe_client):  # noqa: F811
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        case = _failed_renewal(clocked, stripe_client, traveller)
        ends = subscription_cancel(account=clocked.account, actor=clocked.user)["ends_at"]
        _flush(clocked.sandbox)
        assert stripe_client.v1.subscriptions.retrieve(clocked.subscription.id).cancel_at_period_end is True
        case.refresh_from_db()
        assert case.status == DunningStatus.OPEN  # the invoice is still owed
        assert ends > clocked.renewal
        # Voided later by ops: the case closes then, not at the cancellation.
        stripe_client.v1.invoices.void_invoice(case.stripe_invoice_id)
        _flush(clocked.sandbox)
    case.refresh_from_db()
    assert case.status == DunningStatus.VOIDED


def test_only_the_current_subscriptions_unpaid_invoice_can_suspend(clocked, stripe_client):  # noqa: F811
    """The merchant drops the failing subscription and starts a new one with a working card: the old invoice is
    still owed (its case stays open, for ops), but it does not lock out an account that pays its current one."""
    from plans.models import PlanPrice

    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        case = _failed_renewal(clocked, stripe_client, traveller)
        stripe_client.v1.subscriptions.cancel(clocked.subscription.id)
        card = stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": clocked.customer.id})
        replacement = stripe_client.v1.subscriptions.create(
            params={
                "customer": clocked.customer.id,
                "items": [{"price": PlanPrice.objects.get(plan__code="pro", interval="month").stripe_price_id}],
                "default_payment_method": card.id,
            }
        )
        _flush(clocked.sandbox)
        assert replacement.status == "active"
        assert _status(clocked) == AccountStatus.ACTIVE

        traveller.move_to(clocked.renewal + timedelta(days=8))
        assert dunning_enforce_grace() == 0
    case.refresh_from_db()
    assert case.status == DunningStatus.OPEN
    assert _status(clocked) == AccountStatus.ACTIVE
    assert stripe_client.v1.invoices.retrieve(case.stripe_invoice_id).status == "open"
