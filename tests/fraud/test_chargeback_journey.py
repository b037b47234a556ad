"""Chargebacks, early fraud warnings and card testing through the live sandbox and signed webhooks."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
import stripe
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account, AccountStatus, AuditLog
from billing.stripe.endpoints import webhook_endpoint_ensure
from fraud.models import DisputeCase, RiskAssessment
from plans.models import PlanPrice
from tests.fraud.helpers import fraud_staff

VISA = "4242424242424242"


@pytest.fixture
def shop(sandbox, catalog, live_server, owner, client):
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    owner.endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    owner.sandbox = sandbox
    owner.web(client)  # a login: part of the evidence
    yield owner
    _flush(sandbox)
    sandbox.reset()


def _flush(sandbox):
    sandbox.request("POST", "/_sandbox/webhooks/flush", api_key=None)


def _pay_now(client, shop) -> dict:
    """Choose Pro with no trial left (charged at once), pay with a Visa, and return the charge."""
    Account.objects.filter(pk=shop.account.pk).update(trial_ends_at=timezone.now() + timedelta(hours=2))
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    response = shop.web(client).post("/billing/checkout/", {"plan_price": price.pk}, REMOTE_ADDR="203.0.113.40")
    assert response.status_code == 302, response.content
    session_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    reply = shop.sandbox.request("POST", f"/_sandbox/checkout/{session_id}/complete", {"card": VISA}, api_key=None)
    assert reply.status == 200, reply.body
    _flush(shop.sandbox)
    customer = djstripe_models.Customer.objects.get(subscriber=shop.account)
    [charge] = shop.sandbox.client().v1.charges.list(params={"customer": customer.id}).data
    return charge


def test_dispute_freezes_the_account_and_staff_submit_its_evidence(client, shop):
    charge = _pay_now(client, shop)
    assert Account.objects.get(pk=shop.account.pk).trusted_at is not None  # first invoice paid: good standing

    reply = shop.sandbox.request(
        "POST", f"/_sandbox/charges/{charge.id}/dispute", {"reason": "fraudulent"}, api_key=None
    )
    assert reply.status == 200, reply.body
    _flush(shop.sandbox)

    account = Account.objects.get(pk=shop.account.pk)
    assert account.status == AccountStatus.SUSPENDED and account.risk_hold
    freeze = AuditLog.objects.get(account=account, action="account.status_changed", after={"status": "suspended"})
    assert freeze.actor is None and "chargeback" in freeze.reason
    case = DisputeCase.objects.get(dispute_id=reply.body["id"])
    assert case.status == "open" and case.amount_cents == charge.amount
    assessment = RiskAssessment.objects.get(account=account, stage="chargeback")
    assert list(assessment.signals.values_list("code", flat=True)) == ["dispute"]
    story = case.evidence["story"]
    assert story["signup"]["email"] == shop.user.email
    assert story["logins"] and story["invoices"] and story["invoices"][0]["status"] == "paid"
    assert case.evidence["stripe"]["customer_email_address"] == shop.user.email

    analyst = fraud_staff()
    client.force_login(analyst)
    page = client.get(reverse("admin:fraud_disputecase_change", args=[case.pk])).content.decode()
    assert "access_activity_log" in page and shop.user.email in page
    for _ in range(2):  # a double click is one submission
        response = client.post(
            reverse("admin:fraud_disputecase_changelist"), {"action": "submit_evidence", "_selected_action": [case.pk]}
        )
        assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == "submitted" and case.submitted_by == analyst
    dispute = shop.sandbox.client().v1.disputes.retrieve(case.dispute_id)
    assert dispute.status == "under_review"
    assert dispute.evidence["customer_email_address"] == shop.user.email
    assert dispute.evidence_details["submission_count"] == 1
    assert AuditLog.objects.filter(action="fraud.dispute_evidence_submitted", actor=analyst).count() == 1


def test_redelivered_dispute_event_opens_one_case(client, shop):
    charge = _pay_now(client, shop)
    shop.sandbox.request(
        "POST", f"/_sandbox/webhook_endpoints/{shop.endpoint.id}/faults", {"duplicate": "true"}, api_key=None
    )
    shop.sandbox.request("POST", f"/_sandbox/charges/{charge.id}/dispute", api_key=None)
    _flush(shop.sandbox)
    assert DisputeCase.objects.count() == 1
    assert RiskAssessment.objects.filter(stage="chargeback").count() == 1


def test_early_fraud_warning_refunds_the_charge_and_suspends(client, shop):
    charge = _pay_now(client, shop)
    reply = shop.sandbox.request("POST", f"/_sandbox/charges/{charge.id}/early_fraud_warning", api_key=None)
    assert reply.status == 200, reply.body
    _flush(shop.sandbox)
    refunded = shop.sandbox.client().v1.charges.retrieve(charge.id)
    assert refunded.refunded and refunded.amount_refunded == charge.amount
    account = Account.objects.get(pk=shop.account.pk)
    assert account.status == AccountStatus.SUSPENDED and account.risk_hold
    assert RiskAssessment.objects.get(account=account, signals__code="early_fraud_warning").decision == "block"


def test_card_testing_declines_put_the_account_in_review_and_refuse_checkout(client, shop, stripe_client):
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    shop.web(client).post("/billing/checkout/", {"plan_price": price.pk}, REMOTE_ADDR="203.0.113.41")
    customer = djstripe_models.Customer.objects.get(subscriber=shop.account)
    for card in ("pm_card_chargeDeclined", "pm_card_visa_chargeDeclinedLostCard", "pm_card_chargeDeclinedStolenCard"):
        with contextlib.suppress(stripe.CardError):  # a decline answers 402: what the card tester sees
            stripe_client.v1.payment_intents.create(
                params={
                    "amount": 100,
                    "currency": "usd",
                    "customer": customer.id,
                    "payment_method": card,
                    "confirm": True,
                }
            )
    _flush(shop.sandbox)
    account = Account.objects.get(pk=shop.account.pk)
    assert account.risk_hold
    flagged = RiskAssessment.objects.get(account=account, signals__code="card_testing")
    assert flagged.decision == "review" and flagged.cooloff_until > timezone.now()
    response = shop.web(client).post("/billing/checkout/", {"plan_price": price.pk}, follow=True)
    assert "being reviewed" in response.content.decode() or "declined" in response.content.decode()
    assert "score" not in response.content.decode().lower()
