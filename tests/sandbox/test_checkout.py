"""Checkout sessions: subscription and setup mode, through the hosted form and the programmatic helper."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
import stripe


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _http(method, url, data=None):
    opener = urllib.request.build_opener(NoRedirect)
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def _price(client, amount=1500):
    return client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
        }
    )


def _session(client, price, **extra):
    return client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 2}],
            "success_url": "https://app.example/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/cancel",
            "client_reference_id": "acct-42",
            "metadata": {"plan": "pro"},
            "allow_promotion_codes": True,
            **extra,
        }
    )


def _types(client):
    return [e.type for e in reversed(client.v1.events.list(params={"limit": 100}).data)]


def test_setup_mode_through_the_helper(sandbox, stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "setup@example.com"})
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "currency": "usd",
            "customer": customer.id,
            "setup_intent_data": {"metadata": {"k": "v"}},
            "success_url": "https://app.example/ok",
        }
    )
    assert session.status == "open" and session.url.endswith(f"/_sandbox/checkout/{session.id}")
    reply = sandbox.request(
        "POST", f"/_sandbox/checkout/{session.id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    assert reply.body["status"] == "complete", reply.body
    session = stripe_client.v1.checkout.sessions.retrieve(session.id)
    assert session.status == "complete" and session.payment_status == "no_payment_required"
    si = stripe_client.v1.setup_intents.retrieve(session.setup_intent)
    assert si.status == "succeeded" and si.metadata.to_dict() == {"k": "v"}
    assert stripe_client.v1.payment_methods.retrieve(si.payment_method).customer == customer.id
    assert stripe_client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method == si.payment_method
    assert _types(stripe_client)[-1] == "checkout.session.completed"


def test_expire_and_list(stripe_client):
    price = _price(stripe_client)
    session = _session(stripe_client, price)
    assert [s.id for s in stripe_client.v1.checkout.sessions.list(params={"status": "open"}).data] == [session.id]
    items = stripe_client.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.price.id, i.quantity, i.amount_total) for i in items.data] == [(price.id, 2, 3000)]
    expired = stripe_client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert _types(stripe_client)[-1] == "checkout.session.expired"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.checkout.sessions.expire(session.id)


billing = pytest.importorskip("sandbox.billing.subscriptions.create")


def test_subscription_mode_pays_through_the_hosted_form(stripe_client):
    price = _price(stripe_client)
    session = _session(stripe_client, price, customer_email="buyer@example.com")
    status, _, html = _http("GET", session.url)
    assert status == 200 and 'name="card"' in html and "buyer@example.com" in html
    status, headers, _ = _http(
        "POST",
        session.url,
        {"email": "buyer@example.com", "card": "4242 4242 4242 4242", "exp": "12 / 34", "cvc": "123", "name": "Ada"},
    )
    assert status == 303
    assert headers["Location"] == f"https://app.example/done?session={session.id}"
    session = stripe_client.v1.checkout.sessions.retrieve(session.id)
    assert session.status == "complete" and session.payment_status == "paid"
    subscription = stripe_client.v1.subscriptions.retrieve(session.subscription)
    assert subscription.status == "active" and subscription.customer == session.customer
    customer = stripe_client.v1.customers.retrieve(session.customer)
    assert customer.email == "buyer@example.com"
    assert customer.invoice_settings.default_payment_method == subscription.default_payment_method
    types = _types(stripe_client)
    assert types[-1] == "checkout.session.completed"
    assert types.index("customer.subscription.created") < types.index("checkout.session.completed")


def test_subscription_mode_decline_keeps_the_session_open(sandbox, stripe_client):
    session = _session(stripe_client, _price(stripe_client), customer_email="d@example.com")
    status, _, html = _http("POST", session.url, {"email": "d@example.com", "card": "4000000000000002"})
    assert status == 402 and "Your card was declined." in html
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "open"
    reply = sandbox.request(
        "POST", f"/_sandbox/checkout/{session.id}/complete", {"card": "4000000000000341"}, api_key=None
    )
    assert reply.body["status"] == "open" and "declined" in reply.body["error"]
    assert stripe_client.v1.events.list(params={"type": "customer.subscription.created"}).data == []
    reply = sandbox.request(
        "POST", f"/_sandbox/checkout/{session.id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    assert reply.body["status"] == "complete"


def test_subscription_mode_with_trial_and_charge_failing_card_completes(sandbox, stripe_client):
    session = _session(
        stripe_client,
        _price(stripe_client),
        customer_email="t@example.com",
        subscription_data={"trial_period_days": 14},
    )
    reply = sandbox.request(
        "POST", f"/_sandbox/checkout/{session.id}/complete", {"card": "4000000000000341"}, api_key=None
    )
    assert reply.body["status"] == "complete", reply.body
    assert reply.body["session"]["payment_status"] == "no_payment_required"
    assert stripe_client.v1.subscriptions.retrieve(reply.body["session"]["subscription"]).status == "trialing"


def test_subscription_mode_three_d_secure(stripe_client):
    session = _session(stripe_client, _price(stripe_client), customer_email="3ds@example.com")
    status, headers, _ = _http("POST", session.url, {"email": "3ds@example.com", "card": "4000002760003184"})
    assert status == 303 and headers["Location"].endswith(f"/_sandbox/checkout/{session.id}/3ds")
    step = session.url + "/3ds"
    status, _, html = _http("GET", step)
    assert "Complete authentication" in html
    status, headers, html = _http("POST", step, {"action": "fail"})
    assert status == 402 and "unable to authenticate" in html
    _http("POST", session.url, {"email": "3ds@example.com", "card": "4000002760003184"})
    status, headers, _ = _http("POST", step, {"action": "complete"})
    assert status == 303 and headers["Location"].startswith("https://app.example/done")
    session = stripe_client.v1.checkout.sessions.retrieve(session.id)
    assert session.status == "complete" and session.payment_status == "paid"
    assert stripe_client.v1.subscriptions.retrieve(session.subscription).status == "active"
