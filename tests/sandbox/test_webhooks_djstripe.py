"""dj-stripe's own webhook view (signature verification on) processes every event type the sandbox emits.

The product routes its own intake instead (billing.stripe.intake); this test routes dj-stripe's view alone
(tests/sandbox/djstripe_urls.py), because dj-stripe stays the mirror and must be able to read every event."""

from __future__ import annotations

import importlib.util
import urllib.error
import urllib.request
import uuid

import pytest
import stripe
from django.conf import settings as django_settings

if not django_settings.configured:
    pytest.skip("needs the project's Django settings (pytest-django)", allow_module_level=True)

from djstripe import models as djstripe_models
from djstripe.enums import WebhookEndpointValidation


@pytest.fixture
def dj_live(sandbox, live_server, transactional_db, settings, monkeypatch):
    monkeypatch.setattr(stripe, "api_base", sandbox.base_url)
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_TEST_SECRET_KEY = sandbox.api_key
    sandbox.request(
        "POST",
        "/_sandbox/webhooks/config",
        {"retry_schedule": "fast", "retry_base_seconds": "0.05", "max_attempts": 2},
        api_key=None,
    )
    yield sandbox, live_server
    # Stop deliveries before pytest-django flushes the database under the live server.
    sandbox.reset()
    sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": "30"}, api_key=None)
    sandbox.request("POST", "/_sandbox/webhooks/config", {"reset": "true"}, api_key=None)


def _register_endpoint(sandbox, live_server):
    key = sandbox.api_key
    djstripe_models.Account.get_or_retrieve_for_api_key(key)
    hook_uuid = str(uuid.uuid4())
    created = sandbox.client().v1.webhook_endpoints.create(
        params={
            "url": f"{live_server.url}/stripe/webhook/{hook_uuid}/",
            "enabled_events": ["*"],
            "metadata": {"djstripe_uuid": hook_uuid},
        }
    )
    endpoint = djstripe_models.WebhookEndpoint.sync_from_stripe_data(created.to_dict(), api_key=key)
    assert str(endpoint.djstripe_uuid) == hook_uuid
    assert endpoint.secret == created.secret
    assert endpoint.djstripe_validation_method == WebhookEndpointValidation.verify_signature
    return endpoint


def _exercise_everything(sandbox):
    client = sandbox.client()
    ok = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(
            params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )
    client.v1.refunds.create(params={"payment_intent": ok.id, "amount": 500})
    disputed = client.v1.payment_intents.create(
        params={"amount": 900, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    dispute = sandbox.request("POST", f"/_sandbox/charges/{disputed.latest_charge}/dispute", api_key=None).body
    client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": "proof"}})
    client.v1.disputes.close(dispute["id"])
    sandbox.request("POST", f"/_sandbox/charges/{ok.latest_charge}/early_fraud_warning", api_key=None)
    three_ds = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "usd", "payment_method": "pm_card_authenticationRequired", "confirm": True}
    )
    with urllib.request.urlopen(three_ds.next_action.redirect_to_url.url, data=b"action=complete", timeout=10) as page:
        assert page.status == 200
    customer = client.v1.customers.create(params={"email": "hooks@example.com"})
    client.v1.setup_intents.create(params={"customer": customer.id, "payment_method": "pm_card_visa", "confirm": True})
    setup = client.v1.checkout.sessions.create(
        params={"mode": "setup", "currency": "usd", "customer": customer.id, "success_url": "https://a.example/ok"}
    )
    sandbox.request("POST", f"/_sandbox/checkout/{setup.id}/complete", {"card": "4242424242424242"}, api_key=None)
    expired = client.v1.checkout.sessions.create(
        params={"mode": "setup", "currency": "usd", "success_url": "https://a.example/ok"}
    )
    client.v1.checkout.sessions.expire(expired.id)
    if importlib.util.find_spec("sandbox.billing.subscriptions.api") is None:
        return
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 1200,
            "recurring": {"interval": "month"},
            "product_data": {"name": "H"},
        }
    )
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "customer_email": "sub@example.com",
            "success_url": "https://a.example/ok",
        }
    )
    reply = sandbox.request(
        "POST", f"/_sandbox/checkout/{session.id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    assert reply.body["status"] == "complete", reply.body


@pytest.mark.urls("tests.sandbox.djstripe_urls")
def test_djstripe_webhook_view_processes_every_emitted_event_type(dj_live):
    sandbox, live_server = dj_live
    endpoint = _register_endpoint(sandbox, live_server)
    _exercise_everything(sandbox)
    flushed = sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": "60"}, api_key=None)
    assert flushed.status == 200, flushed.body

    events = sandbox.client().v1.events.list(params={"limit": 100}).data
    emitted = {e.id: e.type for e in events}
    assert len(events) < 100
    triggers = list(djstripe_models.WebhookEventTrigger.objects.filter(webhook_endpoint=endpoint))
    problems = {
        t.json_body.get("type"): (t.valid, t.processed, t.exception) for t in triggers if not (t.valid and t.processed)
    }
    assert problems == {}
    processed = {t.json_body["id"]: t.json_body["type"] for t in triggers if t.valid and t.processed}
    assert processed == emitted
    for expected in (
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "charge.succeeded",
        "charge.failed",
        "charge.refunded",
        "refund.created",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "radar.early_fraud_warning.created",
        "setup_intent.succeeded",
        "checkout.session.completed",
        "checkout.session.expired",
    ):
        assert expected in processed.values(), expected
    # A tampered body is refused by the view's signature check.
    first = triggers[0]
    request = urllib.request.Request(
        f"{live_server.url}/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=first.body.replace('"livemode": false', '"livemode": true').encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": first.headers["Stripe-Signature"]},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 400
