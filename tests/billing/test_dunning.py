"""Dunning through the sandbox's test clock, with live webhooks: fail → retry → recover, fail → suspend → cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from djstripe import models as djstripe_models

from accounts.models import Account, AccountStatus, AuditLog
from billing.dunning.card import card_update_session
from billing.dunning.cases import dunning_enforce_grace
from billing.models import DunningCase, DunningStatus
from billing.stripe.endpoints import webhook_endpoint_ensure
from plans.models import PlanPrice
from tests.billing.clock_helpers import clocked_customer


def _flush(sandbox):
    sandbox.request("POST", "/_sandbox/webhooks/flush", api_key=None)


@pytest.fixture
def clocked(sandbox, stripe_client, live_server, owner):
    """The owner's account paying Pro monthly through a customer on a sandbox test clock; our clock follows."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(djstripe_tolerance=0)  # clock ≠ signing time
    start = datetime.now(tz=UTC).replace(microsecond=0)
    clock, customer = clocked_customer(stripe_client, owner.account, start=start)
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    subscription = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.stripe_price_id}]}
    )
    _flush(sandbox)
    assert Account.objects.get(pk=owner.account.pk).status == AccountStatus.ACTIVE
    # From now on the card on file fails (it attaches, then every charge is declined).
    failing = stripe_client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
    stripe_client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": failing.id}})
    owner.clock, owner.customer, owner.subscription = clock, customer, subscription
    owner.renewal = datetime.fromtimestamp(subscription["items"]["data"][0]["current_period_end"], tz=UTC)
    owner.sandbox = sandbox
    yield owner
    _flush(sandbox)


def _advance(owner, stripe_client, to: datetime, traveller):
    stripe_client.v1.test_helpers.test_clocks.advance(owner.clock.id, params={"frozen_time": int(to.timestamp())})
    traveller.move_to(to)
    _flush(owner.sandbox)


def _status(owner) -> str:
    return Account.objects.get(pk=owner.account.pk).status


def test_failed_renewal_then_a_new_card_recovers_the_account(clocked, stripe_client):
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        _advance(clocked, stripe_client, clocked.renewal + timedelta(hours=2), traveller)
        assert _status(clocked) == AccountStatus.PAST_DUE
        case = DunningCase.objects.get(account=clocked.account)
        assert (case.status, case.failures) == (DunningStatus.OPEN, 1)
        failed = [m for m in mail.outbox if m.subject == "Your Tollbooth payment failed"]
        assert len(failed) == 1 and "/billing/fix-card/" in failed[0].body

        # A Stripe retry (3 days later) fails again: still one case, one email.
        _advance(clocked, stripe_client, clocked.renewal + timedelta(days=3, hours=3), traveller)
        case.refresh_from_db()
        assert case.failures == 2
        assert len([m for m in mail.outbox if m.subject == "Your Tollbooth payment failed"]) == 1

        # The merchant follows the link and enters a card that works: the invoice is paid at once.
        url = card_update_session(account=clocked.account, actor=clocked.user)
        session_id = url.rstrip("/").split("/")[-1]
        reply = clocked.sandbox.request(
            "POST", f"/_sandbox/checkout/{session_id}/complete", {"card": "4242424242424242"}, api_key=None
        )
        assert reply.status == 200, reply.body
        _flush(clocked.sandbox)
        _flush(clocked.sandbox)  # the payment made by our handler emits its own events

    case.refresh_from_db()
    assert case.status == DunningStatus.RECOVERED
    assert _status(clocked) == AccountStatus.ACTIVE
    invoice = stripe_client.v1.invoices.retrieve(case.stripe_invoice_id)
    assert (invoice.status, invoice.amount_paid) == ("paid", 9900)
    assert any(m.subject.startswith("Payment received") for m in mail.outbox)
    assert [m.subject for m in mail.outbox].count("Your Tollbooth receipt for 99.00 USD") == 2  # first + recovered
    actions = set(AuditLog.objects.filter(account=clocked.account).values_list("action", flat=True))
    assert {"dunning.opened", "billing.card_updated", "dunning.recovered"} <= actions


def test_failed_renewal_suspends_after_the_grace_period_then_stripe_cancels(clocked, stripe_client):
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        _advance(clocked, stripe_client, clocked.renewal + timedelta(hours=2), traveller)
        assert _status(clocked) == AccountStatus.PAST_DUE
        assert dunning_enforce_grace() == 0  # within the grace period

        _advance(clocked, stripe_client, clocked.renewal + timedelta(days=7, hours=3), traveller)
        assert dunning_enforce_grace() == 1
        assert _status(clocked) == AccountStatus.SUSPENDED
        assert any(m.subject == "Your Tollbooth account is suspended" for m in mail.outbox)
        # Another retry fails: the account stays suspended (not back to past_due).
        _advance(clocked, stripe_client, clocked.renewal + timedelta(days=8, hours=4), traveller)
        assert _status(clocked) == AccountStatus.SUSPENDED

        # Stripe's last retry (3 + 5 + 7 days) fails: the subscription is canceled.
        _advance(clocked, stripe_client, clocked.renewal + timedelta(days=16), traveller)

    assert stripe_client.v1.subscriptions.retrieve(clocked.subscription.id).status == "canceled"
    assert DunningCase.objects.get(account=clocked.account).status == DunningStatus.CANCELED
    assert _status(clocked) == AccountStatus.SUSPENDED
    reasons = list(
        AuditLog.objects.filter(account=clocked.account, action="account.status_changed").values_list("after", "reason")
    )
    assert ({"status": "suspended"}, "Payment overdue for 7 days") in reasons


def test_fix_card_page_is_for_owners_and_admins(client, owner, agent):
    assert agent.web(client).get("/billing/fix-card/").status_code == 403
    client.logout()
    response = owner.web(client).get("/billing/fix-card/", follow=True)
    assert "no card to update yet" in response.content.decode()


def test_a_hard_decline_skips_retries_suspends_at_once_and_raises_a_fraud_signal(clocked, stripe_client):
    """The policy is data: treating this card's decline as hard exercises the hard-decline path for real."""
    from billing.dunning.cases import _decline_code, dunning_policy
    from fraud.models import RiskAssessment

    policy = dunning_policy()
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        # Learn the code this test card declines with, then make it a hard one, and fail the next renewal.
        probe = stripe_client.v1.invoices.list(params={"customer": clocked.customer.id, "limit": 1}).data[0]
        policy.hard_decline_codes = ["generic_decline", "card_declined"]
        policy.save()
        _advance(clocked, stripe_client, clocked.renewal + timedelta(hours=2), traveller)
        case = DunningCase.objects.get(account=clocked.account)
        assert _decline_code(case.stripe_invoice_id) in policy.hard_decline_codes, probe.id
        assert (case.hard_decline, case.status) == (True, DunningStatus.SUSPENDED)
        assert _status(clocked) == AccountStatus.SUSPENDED
        invoice = stripe_client.v1.invoices.retrieve(case.stripe_invoice_id)
        assert invoice.auto_advance is False and invoice.next_payment_attempt is None  # no retries
        signal = RiskAssessment.objects.filter(account=clocked.account, stage="payment").latest("pk")
        assert signal.score >= 50
