"""Payment intents, setup intents, charges, refunds, disputes and early fraud warnings, through the stripe package."""

from __future__ import annotations

import urllib.parse
import urllib.request

import pytest
import stripe


def _events(client, prefix=""):
    return [e.type for e in reversed(client.v1.events.list(params={"limit": 100}).data) if e.type.startswith(prefix)]


def _customer_with(client, pm="pm_card_visa"):
    return client.v1.customers.create(params={"email": "p@example.com", "payment_method": pm})


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _post_form(url, data):
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), method="POST")
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_successful_payment_creates_a_charge_with_card_details_and_radar_outcome(stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert pi.status == "succeeded"
    assert pi.amount_received == 2000
    charge = stripe_client.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "succeeded" and charge.paid and charge.captured
    assert charge.payment_intent == pi.id
    assert charge.outcome.risk_level == "normal"
    card = charge.payment_method_details.card
    assert (card.last4, card.funding, card.country) == ("4242", "credit", "US")
    assert len(card.fingerprint) == 16
    assert _events(stripe_client) == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    listed = stripe_client.v1.charges.list(params={"payment_intent": pi.id})
    assert [c.id for c in listed.data] == [charge.id]


def test_decline_answers_402_and_leaves_the_intent_requiring_a_payment_method(stripe_client):
    customer = _customer_with(stripe_client, "pm_card_chargeCustomerFail")
    pm = stripe_client.v1.payment_methods.list(params={"customer": customer.id}).data[0]
    with pytest.raises(stripe.CardError) as caught:
        stripe_client.v1.payment_intents.create(
            params={
                "amount": 500,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": pm.id,
                "confirm": True,
                "off_session": True,
            }
        )
    error = caught.value.error
    assert error.code == "card_declined" and error.decline_code == "generic_decline"
    pi = stripe_client.v1.payment_intents.retrieve(error.payment_intent.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.decline_code == "generic_decline"
    charge = stripe_client.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "failed" and charge.failure_code == "card_declined"
    assert _events(stripe_client, "charge.") == ["charge.failed"]
    assert "payment_intent.payment_failed" in _events(stripe_client)


def test_radar_risk_levels_from_test_cards(stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "confirm": True,
            "payment_method": stripe_client.v1.payment_methods.create(
                params={"type": "card", "card": {"number": "4000000000009235", "exp_month": 12, "exp_year": 2040}}
            ).id,
        }
    )
    assert stripe_client.v1.charges.retrieve(pi.latest_charge).outcome.risk_level == "elevated"
    with pytest.raises(stripe.CardError) as caught:
        stripe_client.v1.payment_intents.create(
            params={"amount": 700, "currency": "usd", "confirm": True, "payment_method": "pm_card_radarBlock"}
        )
    charge = stripe_client.v1.charges.retrieve(caught.value.error.charge)
    assert charge.outcome.risk_level == "highest" and charge.outcome.type == "blocked"


def _three_ds_intent(stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
            "return_url": "https://shop.example/return",
        }
    )
    assert pi.status == "requires_action"
    assert pi.next_action.type == "redirect_to_url"
    assert pi.latest_charge is None
    return pi


def test_three_d_secure_approval_on_the_hosted_page(stripe_client):
    pi = _three_ds_intent(stripe_client)
    url = pi.next_action.redirect_to_url.url
    with urllib.request.urlopen(url, timeout=10) as response:
        html = response.read().decode()
    assert "Complete authentication" in html and "Fail authentication" in html
    status, headers, _ = _post_form(url, {"action": "complete"})
    assert status == 303
    assert headers["Location"].startswith(f"https://shop.example/return?payment_intent={pi.id}")
    pi = stripe_client.v1.payment_intents.retrieve(pi.id)
    assert pi.status == "succeeded"
    assert stripe_client.v1.charges.retrieve(pi.latest_charge).status == "succeeded"
    assert _events(stripe_client) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]


def test_three_d_secure_failure(stripe_client):
    pi = _three_ds_intent(stripe_client)
    status, _, _ = _post_form(pi.next_action.redirect_to_url.url, {"action": "fail"})
    assert status == 303
    pi = stripe_client.v1.payment_intents.retrieve(pi.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "payment_intent_authentication_failure"
    assert _events(stripe_client)[-1] == "payment_intent.payment_failed"


def test_off_session_payment_with_a_three_d_secure_card_fails_authentication_required(stripe_client):
    customer = _customer_with(stripe_client, "pm_card_authenticationRequired")
    pm = stripe_client.v1.payment_methods.list(params={"customer": customer.id}).data[0]
    with pytest.raises(stripe.CardError) as caught:
        stripe_client.v1.payment_intents.create(
            params={
                "amount": 900,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": pm.id,
                "confirm": True,
                "off_session": True,
            }
        )
    assert caught.value.error.code == "authentication_required"


def test_confirm_later_cancel_and_setup_future_usage(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "later@example.com"})
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 300, "currency": "eur", "customer": customer.id, "setup_future_usage": "off_session"}
    )
    assert pi.status == "requires_payment_method"
    pi = stripe_client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert pi.status == "succeeded"
    assert stripe_client.v1.payment_methods.retrieve(pi.payment_method).customer == customer.id
    other = stripe_client.v1.payment_intents.create(params={"amount": 300, "currency": "eur"})
    canceled = stripe_client.v1.payment_intents.cancel(other.id)
    assert canceled.status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.payment_intents.cancel(pi.id)
    listed = stripe_client.v1.payment_intents.list(params={"customer": customer.id})
    assert [p.id for p in listed.data] == [pi.id]


def test_setup_intent_succeeds_and_attaches(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "si@example.com"})
    si = stripe_client.v1.setup_intents.create(
        params={"customer": customer.id, "payment_method": "pm_card_visa", "confirm": True}
    )
    assert si.status == "succeeded"
    assert stripe_client.v1.payment_methods.retrieve(si.payment_method).customer == customer.id
    assert "setup_intent.succeeded" in _events(stripe_client)


def test_setup_intent_three_d_secure(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "si3@example.com"})
    si = stripe_client.v1.setup_intents.create(
        params={"customer": customer.id, "payment_method": "pm_card_authenticationRequiredOnSetup", "confirm": True}
    )
    assert si.status == "requires_action"
    status, _, html = _post_form(si.next_action.redirect_to_url.url, {"action": "complete"})
    assert status == 200 and "succeeded" in html
    assert stripe_client.v1.setup_intents.retrieve(si.id).status == "succeeded"


def test_refunds_partial_then_full(stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    first = stripe_client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 400})
    assert first.status == "succeeded" and first.amount == 400 and first.charge == pi.latest_charge
    charge = stripe_client.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_refunded == 400 and charge.refunded is False
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 601})
    second = stripe_client.v1.refunds.create(params={"charge": charge.id})
    assert second.amount == 600
    charge = stripe_client.v1.charges.retrieve(charge.id)
    assert charge.refunded is True and charge.amount_refunded == 1000
    assert {r.id for r in stripe_client.v1.refunds.list(params={"charge": charge.id}).data} == {first.id, second.id}
    assert stripe_client.v1.refunds.retrieve(first.id).amount == 400
    assert _events(stripe_client, "refund.") == ["refund.created", "refund.created"]
    assert _events(stripe_client, "charge.refunded") == ["charge.refunded", "charge.refunded"]


def test_dispute_lifecycle(sandbox, stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    reply = sandbox.request("POST", f"/_sandbox/charges/{pi.latest_charge}/dispute", {"reason": "product_not_received"})
    assert reply.status == 200
    dispute = stripe_client.v1.disputes.retrieve(reply.body["id"])
    assert dispute.status == "needs_response" and dispute.reason == "product_not_received" and dispute.amount == 2500
    assert stripe_client.v1.charges.retrieve(pi.latest_charge).disputed is True
    updated = stripe_client.v1.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "Delivered on time"}, "submit": True}
    )
    assert updated.status == "under_review" and updated.evidence.uncategorized_text == "Delivered on time"
    won = sandbox.request("POST", f"/_sandbox/disputes/{dispute.id}/resolve", {"status": "won"})
    assert won.body["status"] == "won"
    assert _events(stripe_client, "charge.dispute") == [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
    ]
    assert [d.id for d in stripe_client.v1.disputes.list().data] == [dispute.id]


def test_dispute_close_and_dispute_test_card(stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 800, "currency": "usd", "payment_method": "pm_card_createDispute", "confirm": True}
    )
    disputes = stripe_client.v1.disputes.list(params={"charge": pi.latest_charge}).data
    assert len(disputes) == 1 and disputes[0].reason == "fraudulent"
    closed = stripe_client.v1.disputes.close(disputes[0].id)
    assert closed.status == "lost"


def test_early_fraud_warning(sandbox, stripe_client):
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 1200, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    reply = sandbox.request(
        "POST", f"/_sandbox/charges/{pi.latest_charge}/early_fraud_warning", {"fraud_type": "unauthorized_use_of_card"}
    )
    warning = stripe_client.v1.radar.early_fraud_warnings.retrieve(reply.body["id"])
    assert warning.charge == pi.latest_charge and warning.fraud_type == "unauthorized_use_of_card"
    assert warning.actionable is True
    listed = stripe_client.v1.radar.early_fraud_warnings.list(params={"payment_intent": pi.id})
    assert [w.id for w in listed.data] == [warning.id]
    assert _events(stripe_client, "radar.") == ["radar.early_fraud_warning.created"]
    auto = stripe_client.v1.payment_intents.create(
        params={"amount": 100, "currency": "usd", "payment_method": "pm_card_createEarlyFraudWarning", "confirm": True}
    )
    assert stripe_client.v1.radar.early_fraud_warnings.list(params={"charge": auto.latest_charge}).data
