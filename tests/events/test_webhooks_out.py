"""Our domain events out as signed webhooks: verified by a receiver with the documented helper, retried on
Stripe's three-day schedule, one endpoint's failures never holding another's, redelivered on request."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import AccountStatus
from accounts.services import account_change_status
from outbox.deliveries import RETRY_DELAYS, deliveries_send_due, event_body
from outbox.events import event_record
from outbox.models import DeliveryStatus, DomainEvent, EventDelivery, WebhookEndpoint
from outbox.signing import SignatureVerificationError, signature_header, verify_signature


def _endpoint(owner, url, **fields) -> tuple[WebhookEndpoint, str]:
    reply = owner.api().post("/api/v1/webhook-endpoints", {"url": url, **fields}, format="json")
    assert reply.status_code == 201, reply.json()
    return WebhookEndpoint.objects.get(url=url, account_id=owner.account.pk), reply.json()["secret"]


def _record(owner, key="test:1"):
    return event_record(
        type="account.reactivated",
        key=key,
        account_id=owner.account.pk,
        data={
            "account": str(owner.account.public_id),
            "status": "active",
            "previous_status": "suspended",
            "reason": "paid",
        },
    )


def test_the_signature_helper_accepts_ours_and_refuses_forgeries_replays_and_other_secrets():
    body = b'{"id":"evt_1"}'
    header = signature_header(secret="whsec_a", body=body, timestamp=1_000_000)
    assert verify_signature(body=body, header=header, secret="whsec_a", now=1_000_010) == {"id": "evt_1"}
    for bad_body, bad_header, secret, now in [
        (b'{"id":"evt_2"}', header, "whsec_a", 1_000_010),  # the body changed
        (body, header, "whsec_b", 1_000_010),  # another secret
        (body, header, "whsec_a", 1_000_000 + 301),  # replayed after the tolerance
        (body, "v1=abc", "whsec_a", 1_000_010),  # no timestamp
    ]:
        with pytest.raises(SignatureVerificationError):
            verify_signature(body=bad_body, header=bad_header, secret=secret, now=now)
    # A secret being rotated: the old and the new signature side by side, either one matches.
    rotated = header + ",v1=" + signature_header(secret="whsec_b", body=body, timestamp=1_000_000).split("v1=")[1]
    assert verify_signature(body=body, header=rotated, secret="whsec_b", now=1_000_010)["id"] == "evt_1"


def test_an_account_suspended_reaches_its_endpoint_signed_and_the_receiver_verifies_it(
    owner, receiver, django_capture_on_commit_callbacks
):
    hooks = receiver()
    endpoint, hooks.secret = _endpoint(owner, hooks.url, event_types=["account.suspended"])
    with django_capture_on_commit_callbacks(execute=True):  # the status move commits; its delivery leaves after
        account_change_status(account=owner.account, to=AccountStatus.SUSPENDED, actor=None, reason="overdue")
    [event] = hooks.verified
    assert (event["type"], event["api_version"], event["account"]) == (
        "account.suspended",
        1,
        str(owner.account.public_id),
    )
    assert event["data"] | {"reason": "overdue"} == {
        "account": str(owner.account.public_id),
        "status": "suspended",
        "previous_status": "trialing",
        "reason": "overdue",
    }
    assert hooks.refused == [] and hooks.headers[0]["Tollbooth-Event-Id"] == event["id"]
    delivery = EventDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts, delivery.response_status) == (DeliveryStatus.SUCCEEDED, 1, 200)
    # The endpoint wants suspensions only: the reactivation is recorded, not sent to it.
    with django_capture_on_commit_callbacks(execute=True):
        account_change_status(account=owner.account, to=AccountStatus.ACTIVE, actor=None, reason="paid")
    assert DomainEvent.objects.filter(type="account.reactivated", account_id=owner.account.pk).count() == 1
    assert len(hooks.verified) == 1


def test_failing_endpoints_are_retried_on_schedule_and_never_hold_a_healthy_one(owner, receiver):
    flaky, healthy = receiver(), receiver()
    flaky.answers = [500, 302]  # a server error, then a redirect (never followed), then it works
    flaky_endpoint, flaky.secret = _endpoint(owner, flaky.url)
    _, healthy.secret = _endpoint(owner, healthy.url)
    closed_endpoint, _ = _endpoint(owner, "http://127.0.0.1:9/nobody-listens")
    _record(owner)
    assert deliveries_send_due() == 1  # the healthy one, at once
    assert len(healthy.verified) == 1
    flaky_delivery = EventDelivery.objects.get(endpoint=flaky_endpoint)
    assert (flaky_delivery.status, flaky_delivery.response_status) == (DeliveryStatus.PENDING, 500)
    assert flaky_delivery.next_attempt_at - flaky_delivery.last_attempt_at == timedelta(seconds=RETRY_DELAYS[0])
    closed = EventDelivery.objects.get(endpoint=closed_endpoint)
    assert closed.status == DeliveryStatus.PENDING and "ConnectionError" in closed.last_error

    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        assert deliveries_send_due() == 0  # the redirect: failed again, not followed
    flaky_delivery.refresh_from_db()
    assert (flaky_delivery.attempts, flaky_delivery.response_status) == (2, 302)
    with time_machine.travel(flaky_delivery.next_attempt_at + timedelta(seconds=1), tick=False):
        assert deliveries_send_due() == 1
    flaky_delivery.refresh_from_db()
    assert (flaky_delivery.status, flaky_delivery.attempts) == (DeliveryStatus.SUCCEEDED, 3)
    assert [e["type"] for e in flaky.verified] == ["account.reactivated"] * 3  # each attempt signed and verified
    assert len(healthy.verified) == 1  # delivered once, never again


def test_a_delivery_gives_up_after_three_days_and_a_redelivery_from_the_api_sends_it(
    owner, receiver, django_capture_on_commit_callbacks
):
    hooks = receiver()
    hooks.answers = [503] * (len(RETRY_DELAYS) + 1)
    endpoint, hooks.secret = _endpoint(owner, hooks.url)
    event = _record(owner)
    started = timezone.now()
    deliveries_send_due()
    delivery = EventDelivery.objects.get(endpoint=endpoint)
    while delivery.status == DeliveryStatus.PENDING:
        with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1), tick=False):
            deliveries_send_due()
        delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 12)  # Stripe's 12 attempts
    assert timedelta(hours=71) < delivery.last_attempt_at - started < timedelta(hours=73)

    with django_capture_on_commit_callbacks(execute=True):  # the request commits; the delivery leaves after
        reply = owner.api().post(f"/api/v1/events/{event.public_id}/redeliver", {}, format="json")
    assert reply.status_code == 202, reply.json()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status) == (DeliveryStatus.SUCCEEDED, 200)
    assert len(hooks.verified) == 13 and hooks.refused == []
    assert reply.json()["deliveries"][0]["status"] == "pending"  # answered before the send, which followed commit


def test_an_event_is_recorded_once_per_key_with_one_delivery_per_endpoint(owner, receiver):
    hooks = receiver()
    _endpoint(owner, hooks.url)
    assert _record(owner, key="once") is not None
    assert _record(owner, key="once") is None  # a retried handler records the same key: nothing new
    assert DomainEvent.objects.filter(key="once").count() == 1
    assert EventDelivery.objects.filter(event__key="once").count() == 1
    body = json.loads(event_body(DomainEvent.objects.get(key="once")))
    assert body["id"].startswith("evt_") and body["type"] == "account.reactivated"
