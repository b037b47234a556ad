"""The plan-selection journey against the live sandbox: checkout → signed webhooks → account status.

The web app runs in pytest-django's live server, so the sandbox's webhook deliveries reach our real intake
(signature verification on) and our handlers, exactly as in production.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta

import pytest
import stripe
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account, AccountStatus, AuditLog
from billing.models import CheckoutAttempt, HandlingStatus, StripeEvent, StripeEventHandling
from billing.stripe.endpoints import webhook_endpoint_ensure
from plans.models import PlanPrice

VISA, DECLINED, THREE_D_SECURE = "4242424242424242", "4000000000000002", "4000002760003184"


@pytest.fixture
def shop(sandbox, catalog, live_server, owner):
    """A trialing merchant, the catalog on the sandbox, and webhooks flowing to the live app."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    owner.endpoint = endpoint
    owner.sandbox = sandbox
    yield owner
    # Let this test's deliveries finish before its endpoint and database go away: the next test's
    # endpoint has the same URL, and a late delivery signed with this one's secret would reach it.
    _flush(sandbox)
    sandbox.reset()


def _flush(sandbox):
    sandbox.request("POST", "/_sandbox/webhooks/flush", api_key=None)


def _deliveries(shop) -> list[dict]:
    reply = shop.sandbox.request("GET", "/_sandbox/deliveries", {"endpoint": shop.endpoint.id}, api_key=None)
    assert reply.status == 200, reply.body
    return reply.body["data"]


def _faults(sandbox, endpoint, **faults):
    params = {key: json.dumps(value) if isinstance(value, bool) else str(value) for key, value in faults.items()}
    reply = sandbox.request("POST", f"/_sandbox/webhook_endpoints/{endpoint.id}/faults", params, api_key=None)
    assert reply.status == 200, reply.body


def _start_checkout(client, shop, plan="pro", interval="month") -> str:
    price = PlanPrice.objects.get(plan__code=plan, interval=interval)
    response = shop.web(client).post("/billing/checkout/", {"plan_price": price.pk})
    assert response.status_code == 302, response.content
    attempt = CheckoutAttempt.objects.get(account=shop.account, status="open")
    assert response["Location"] == attempt.url
    return attempt.stripe_session_id


def _pay(sandbox, session_id, card):
    return sandbox.request("POST", f"/_sandbox/checkout/{session_id}/complete", {"card": card}, api_key=None)


def _status(account) -> str:
    return Account.objects.get(pk=account.pk).status


def test_trialing_merchant_chooses_pro_pays_and_is_active_after_the_webhook(client, shop):
    session_id = _start_checkout(client, shop)
    reply = _pay(shop.sandbox, session_id, VISA)
    assert reply.status == 200, reply.body
    _flush(shop.sandbox)

    assert _status(shop.account) == AccountStatus.ACTIVE
    assert CheckoutAttempt.objects.get(stripe_session_id=session_id).status == "completed"
    transition = AuditLog.objects.get(action="account.status_changed", account=shop.account)
    assert transition.after == {"status": "active"}
    assert transition.actor is None and transition.actor_label == "system"

    page = client.get("/billing/").content.decode()
    assert "Pro" in page
    assert "$99.00" in page
    assert "Visa ending in 4242" in page or "visa ending in 4242" in page.lower()
    assert "View invoice" in page or "No invoices yet" not in page


def test_merchant_without_trial_left_is_charged_at_once(client, shop, stripe_client):
    Account.objects.filter(pk=shop.account.pk).update(trial_ends_at=timezone.now() + timedelta(hours=2))
    session_id = _start_checkout(client, shop, plan="basic", interval="year")
    assert _pay(shop.sandbox, session_id, VISA).status == 200
    _flush(shop.sandbox)

    assert _status(shop.account) == AccountStatus.ACTIVE
    [invoice] = djstripe_models.Invoice.objects.filter(customer__subscriber=shop.account)
    assert (invoice.stripe_data["amount_paid"], invoice.stripe_data["status"]) == (49000, "paid")
    assert "$490.00" in client.get("/billing/").content.decode()
    receipts = [m for m in mail.outbox if m.subject == "Your Tollbooth receipt for 490.00 USD"]
    assert len(receipts) == 1 and receipts[0].to == [shop.account.billing_email]


def test_declined_card_leaves_the_account_trialing_and_says_why(client, shop):
    session_id = _start_checkout(client, shop)
    reply = _pay(shop.sandbox, session_id, DECLINED)
    assert reply.status in (200, 402)
    assert "declined" in json.dumps(reply.body).lower()
    _flush(shop.sandbox)
    assert _status(shop.account) == AccountStatus.TRIALING
    assert CheckoutAttempt.objects.get(stripe_session_id=session_id).status == "open"
    assert not djstripe_models.Subscription.objects.filter(customer__subscriber=shop.account).exists()


def test_cancelled_checkout_page_keeps_the_trial(client, shop):
    _start_checkout(client, shop)
    page = client.get("/billing/checkout/cancelled/").content.decode()
    assert "Nothing was charged" in page
    assert _status(shop.account) == AccountStatus.TRIALING


def test_duplicated_and_shuffled_webhooks_change_nothing_twice(client, shop):
    _faults(shop.sandbox, shop.endpoint, duplicate=True, shuffle=True)
    session_id = _start_checkout(client, shop)
    assert _pay(shop.sandbox, session_id, VISA).status == 200
    _flush(shop.sandbox)

    assert _status(shop.account) == AccountStatus.ACTIVE
    assert AuditLog.objects.filter(action="account.status_changed", account=shop.account).count() == 1
    # Every event arrived twice (at least), was stored once and applied once.
    delivered = Counter(d["event"] for d in _deliveries(shop) if d["delivered"])
    assert delivered and all(count >= 2 for count in delivered.values()), delivered
    assert set(StripeEvent.objects.values_list("stripe_id", flat=True)) == set(delivered)
    assert not StripeEvent.objects.filter(processed_at=None).exists()
    assert djstripe_models.Subscription.objects.filter(customer__subscriber=shop.account).count() == 1


def test_delayed_and_redelivered_webhooks_still_activate(client, shop):
    _faults(shop.sandbox, shop.endpoint, delay="0.2", drop_then_redeliver=True)
    session_id = _start_checkout(client, shop)
    assert _pay(shop.sandbox, session_id, VISA).status == 200
    _flush(shop.sandbox)
    assert _status(shop.account) == AccountStatus.ACTIVE
    assert AuditLog.objects.filter(action="account.status_changed", account=shop.account).count() == 1


def test_second_checkout_after_subscribing_is_refused(client, shop):
    session_id = _start_checkout(client, shop)
    _pay(shop.sandbox, session_id, VISA)
    _flush(shop.sandbox)
    price = PlanPrice.objects.get(plan__code="advanced", interval="month")
    response = shop.api().post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_subscribed"


def test_forged_webhook_is_refused_and_changes_nothing(client, shop, live_server):
    import requests

    payload = json.dumps(
        {
            "id": "evt_forged",
            "object": "event",
            "type": "customer.subscription.updated",
            "data": {"object": {"id": "sub_x", "object": "subscription", "customer": "cus_x"}},
        }
    )
    url = live_server.url + f"/stripe/webhook/{shop.endpoint.djstripe_uuid}/"
    timestamp = int(time.time())
    forged = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", "whsec_not_the_secret")
    response = requests.post(
        url,
        data=payload,
        timeout=10,
        headers={"Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={forged}"},
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.filter(stripe_id="evt_forged").exists()
    assert _status(shop.account) == AccountStatus.TRIALING


def test_events_for_a_customer_we_do_not_know_are_a_harmless_no_op(shop, stripe_client):
    stranger = stripe_client.v1.customers.create(
        params={
            "email": "stranger@elsewhere.example",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    stripe_client.v1.subscriptions.create(params={"customer": stranger.id, "items": [{"price": price.stripe_price_id}]})
    _flush(shop.sandbox)
    events = StripeEvent.objects.all()
    assert events.exists()
    assert all(event.processed_at for event in events)
    assert not StripeEventHandling.objects.exclude(status=HandlingStatus.SUCCEEDED).exists()
    assert Account.objects.get(pk=shop.account.pk).status == AccountStatus.TRIALING
    assert not AuditLog.objects.filter(action="account.status_changed").exists()


def _hosted_form(url: str, **fields):
    import requests

    return requests.post(url, data=fields, allow_redirects=False, timeout=15)


def test_three_d_secure_card_is_active_after_approval_on_the_hosted_pages(client, shop, live_server):
    session_id = _start_checkout(client, shop)
    attempt = CheckoutAttempt.objects.get(stripe_session_id=session_id)

    # A person types the 3-D Secure test card on the hosted checkout page...
    step = _hosted_form(attempt.url, card="4000 0027 6000 3184", exp="12 / 34", cvc="123", name="Ada")
    assert step.status_code in (302, 303)
    challenge = step.headers["Location"]
    if challenge.startswith("/"):
        challenge = shop.sandbox.base_url + challenge
    assert "/3ds" in challenge
    _flush(shop.sandbox)
    assert _status(shop.account) == AccountStatus.TRIALING  # nothing confirmed yet

    # ...approves the bank's challenge, and lands on our success page.
    done = _hosted_form(challenge, action="complete")
    assert done.status_code in (302, 303)
    assert "/billing/checkout/success/" in done.headers["Location"]
    _flush(shop.sandbox)
    assert _status(shop.account) == AccountStatus.ACTIVE


def test_failed_three_d_secure_keeps_the_trial(client, shop):
    session_id = _start_checkout(client, shop)
    attempt = CheckoutAttempt.objects.get(stripe_session_id=session_id)
    step = _hosted_form(attempt.url, card="4000002760003184", exp="12 / 34", cvc="123", name="Ada")
    challenge = step.headers["Location"]
    if challenge.startswith("/"):
        challenge = shop.sandbox.base_url + challenge
    _hosted_form(challenge, action="fail")
    _flush(shop.sandbox)
    assert _status(shop.account) == AccountStatus.TRIALING
    assert not djstripe_models.Subscription.objects.filter(
        customer__subscriber=shop.account, stripe_data__status__in=["active", "trialing"]
    ).exists()


def test_ops_see_the_accounts_stripe_customer_subscription_and_invoices(client, shop, staff_user):
    session_id = _start_checkout(client, shop)
    _pay(shop.sandbox, session_id, VISA)
    _flush(shop.sandbox)
    client.logout()
    client.force_login(staff_user)
    html = client.get(f"/admin/accounts/account/{shop.account.pk}/change/").content.decode()
    customer = djstripe_models.Customer.objects.get(subscriber=shop.account)
    subscription = djstripe_models.Subscription.objects.get(customer=customer)
    invoice = djstripe_models.Invoice.objects.get(customer=customer)
    assert f"/admin/djstripe/customer/{customer.pk}/change/" in html
    assert f"/admin/djstripe/subscription/{subscription.pk}/change/" in html
    assert f"/admin/djstripe/invoice/{invoice.pk}/change/" in html
    assert "Pro" in html
    found = client.get("/admin/accounts/account/", {"q": customer.id})
    assert list(found.context["cl"].result_list) == [shop.account]


def test_after_subscribing_each_persona_sees_only_what_it_may(client, shop, agent, outsider):
    session_id = _start_checkout(client, shop)
    _pay(shop.sandbox, session_id, VISA)
    _flush(shop.sandbox)
    owner_view = shop.api().get("/api/v1/subscription").json()
    assert (owner_view["account_status"], owner_view["subscription"]["plan"]) == ("active", "pro")
    assert owner_view["subscription"]["amount_cents"] == 9900
    assert len(shop.api().get("/api/v1/invoices").json()) == 1
    assert agent.api().get("/api/v1/subscription").status_code == 403
    assert agent.api().get("/api/v1/invoices").status_code == 403
    assert outsider.api().get("/api/v1/subscription").json()["subscription"] is None
    assert outsider.api().get("/api/v1/invoices").json() == []
