"""Stripe's events in: verified before anything is stored, stored once, answered at once, applied by handlers
that each keep their own outcome (a failing one retried alone), in order per customer.

The app runs in pytest-django's live server and the sandbox delivers its signed webhooks to it; Celery runs
eagerly here (processing happens after the intake's commit, inside the delivery's request), except where a test
takes the broker away.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO

import pytest
import requests
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import AccountStatus
from billing.models import HandlingStatus, Receipt, StripeEvent, StripeEventHandling
from billing.stripe import events as stripe_events
from billing.stripe.events import MAX_ATTEMPTS
from billing.stripe.intake import MAX_BODY_BYTES
from billing.tasks import sweep_stripe_events
from tests.billing.event_helpers import sandbox_flush, subscribe_paying


def _signed(event_shop, body: bytes, *, secret: str | None = None, stamp: int | None = None) -> dict:
    stamp = stamp or int(time.time())
    key = (secret or event_shop.endpoint.secret).encode()
    signature = hmac.new(key, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={signature}"}


def _event_body(event_shop, event_id: str) -> bytes:
    reply = event_shop.sandbox.request("GET", f"/v1/events/{event_id}")  # the event's own JSON, as Stripe sends it
    assert reply.status == 200, reply.body
    return json.dumps(reply.body).encode()


def _post(event_shop, body: bytes, headers: dict) -> requests.Response:
    return requests.post(event_shop.url, data=body, headers=headers, timeout=30)


# --- intake ------------------------------------------------------------------------------------------------


def test_an_unsigned_or_forged_body_is_refused_and_nothing_is_stored(event_shop):
    body = json.dumps({"id": "evt_forged", "type": "invoice.paid", "created": 1, "data": {"object": {}}}).encode()
    assert _post(event_shop, body, {"Content-Type": "application/json"}).status_code == 400
    assert _post(event_shop, body, _signed(event_shop, body, secret="whsec_not_the_secret")).status_code == 400
    assert not StripeEvent.objects.exists()


def test_an_oversized_body_is_refused_unread(event_shop):
    body = b'{"id": "evt_big", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = _post(event_shop, body, _signed(event_shop, body))
    assert response.status_code == 413
    assert "bytes" in response.json()["error"]["message"]
    assert not StripeEvent.objects.exists()


def test_a_signed_body_that_is_not_an_event_is_refused(event_shop):
    body = b'{"hello": "world"}'
    assert _post(event_shop, body, _signed(event_shop, body)).status_code == 400
    assert not StripeEvent.objects.exists()


def test_a_redelivered_or_replayed_event_is_stored_and_applied_once(client, event_shop):
    subscribe_paying(client, event_shop)
    paid = StripeEvent.objects.get(type="invoice.paid")
    body = _event_body(event_shop, paid.stripe_id)
    handlings = dict(StripeEventHandling.objects.filter(event=paid).values_list("handler", "attempts"))

    again = _post(event_shop, body, _signed(event_shop, body))

    assert again.status_code == 200 and again.json() == {"received": True, "id": paid.stripe_id, "duplicate": True}
    assert StripeEvent.objects.filter(stripe_id=paid.stripe_id).count() == 1
    assert dict(StripeEventHandling.objects.filter(event=paid).values_list("handler", "attempts")) == handlings
    assert Receipt.objects.filter(account=event_shop.account).count() == 1


def test_an_event_of_a_type_we_do_not_handle_is_acknowledged_and_done(event_shop):
    customer = event_shop.sandbox.client().v1.customers.create(params={"email": "someone@else.example"})
    sandbox_flush(event_shop.sandbox)
    [created] = StripeEvent.objects.filter(type="customer.created", object_id=customer.id)
    assert created.processed_at is not None and created.next_attempt_at is None
    product = event_shop.sandbox.client().v1.products.create(params={"name": "Not ours"})
    sandbox_flush(event_shop.sandbox)
    [event] = StripeEvent.objects.filter(type="product.created", object_id=product.id)
    assert event.processed_at is not None and not event.handlings.exists()


# --- processing --------------------------------------------------------------------------------------------


def test_every_event_of_a_checkout_is_applied_with_one_outcome_per_handler(client, event_shop):
    subscribe_paying(client, event_shop)
    event_shop.account.refresh_from_db()
    assert event_shop.account.status == AccountStatus.ACTIVE
    assert not StripeEvent.objects.filter(processed_at=None).exists()
    paid = StripeEvent.objects.get(type="invoice.paid")
    outcomes = dict(StripeEventHandling.objects.filter(event=paid).values_list("handler", "status"))
    assert outcomes == {
        "on_invoice_changed": HandlingStatus.SUCCEEDED,
        "on_invoice_paid_settle_ledger": HandlingStatus.SUCCEEDED,
        "on_invoice_paid_dunning": HandlingStatus.SUCCEEDED,
        "on_invoice_paid_trust": HandlingStatus.SUCCEEDED,
    }


def test_a_handler_that_fails_is_retried_alone_and_the_receipt_goes_out_once(client, event_shop, smtp):
    """The receipt's handler fails once (PostgreSQL refuses its write: a CHECK no row passes, added for the
    first attempt), is retried alone, and the receipt leaves once, through the outbox after the retry's commit;
    the SMTP server refuses the first try of it, and the relay sends it again later, once."""
    from django.db import connection

    from outbox.mail import emails_send_due
    from outbox.models import EmailStatus, OutgoingEmail

    server = smtp(refuse_first=1)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE billing_receipt ADD CONSTRAINT refuse_once CHECK (false) NOT VALID")
    subscribe_paying(client, event_shop)
    paid = StripeEvent.objects.get(type="invoice.paid")
    receipt = StripeEventHandling.objects.get(event=paid, handler="on_invoice_paid_dunning")
    assert (receipt.status, receipt.attempts) == (HandlingStatus.FAILED, 1)
    assert "refuse_once" in receipt.last_error
    # The failed handler's transaction rolled back whole: no receipt row, no email written for it.
    assert paid.processed_at is None and not Receipt.objects.exists()
    assert not OutgoingEmail.objects.filter(key__startswith="receipt:").exists()
    others = StripeEventHandling.objects.filter(event=paid).exclude(pk=receipt.pk)
    assert set(others.values_list("status", "attempts")) == {(HandlingStatus.SUCCEEDED, 1)}

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE billing_receipt DROP CONSTRAINT refuse_once")
    assert sweep_stripe_events() == 0  # its retry is not due yet
    with time_machine.travel(receipt.next_attempt_at + timedelta(seconds=1)):
        assert sweep_stripe_events() == 1

    receipt.refresh_from_db()
    paid.refresh_from_db()
    assert (receipt.status, receipt.attempts) == (HandlingStatus.SUCCEEDED, 2)
    assert set(others.values_list("status", "attempts")) == {(HandlingStatus.SUCCEEDED, 1)}  # not run again
    assert paid.processed_at is not None and paid.next_attempt_at is None
    assert Receipt.objects.filter(account=event_shop.account).count() == 1
    email = OutgoingEmail.objects.get(key=f"receipt:{paid.object_id}")
    # Sent after the retry's commit, refused by the SMTP server: it waits for its backoff, then goes once.
    assert (email.status, email.attempts, server.refused) == (EmailStatus.PENDING, 1, 1)
    with time_machine.travel(email.next_attempt_at + timedelta(seconds=1)):
        assert emails_send_due() == 1
        assert emails_send_due() == 0
    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.SENT, 2)
    assert [m for m in server.received if "receipt" in m.lower()] and len(server.received) == 1


def test_concurrent_deliveries_for_one_subscription_end_in_stripes_latest_state(client, event_shop, stripe_client):
    subscribe_paying(client, event_shop)
    subscription = djstripe_models.Subscription.objects.get(customer__subscriber=event_shop.account)
    stripe_client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    stripe_client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": False})
    sandbox_flush(event_shop.sandbox)
    updates = list(
        StripeEvent.objects.filter(type="customer.subscription.updated", object_id=subscription.id).order_by(
            "stripe_created", "id"
        )
    )
    older, newer = updates[-2], updates[-1]
    # Both delivered again at once, the newer first: whatever order they commit in, the state is Stripe's.
    StripeEvent.objects.filter(pk__in=[older.pk, newer.pk]).delete()
    bodies = [_event_body(event_shop, newer.stripe_id), _event_body(event_shop, older.stripe_id)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(lambda body: _post(event_shop, body, _signed(event_shop, body)).status_code, bodies))

    assert statuses == [200, 200]
    assert StripeEvent.objects.filter(pk__isnull=False, stripe_id__in=[older.stripe_id, newer.stripe_id]).count() == 2
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False
    assert stripe_client.v1.subscriptions.retrieve(subscription.id).cancel_at_period_end is False


@contextmanager
def _broker_down(settings):
    """Queueing fails at once inside (nothing listens at the broker's address): events wait in PostgreSQL."""
    from config.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    broker = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app.conf.task_publish_retry = False
    app.amqp._producer_pool = None  # no pooled connection to the real broker from an earlier test
    try:
        yield
    finally:
        app.conf.task_always_eager = True
        app.conf.broker_url = broker
        app.conf.task_publish_retry = True
        app.amqp._producer_pool = None
        settings.CELERY_TASK_ALWAYS_EAGER = True


def test_with_the_broker_down_the_intake_still_answers_and_the_sweeper_applies_the_event(
    client, event_shop, settings, stripe_client
):
    subscribe_paying(client, event_shop)
    with _broker_down(settings):
        subscription = djstripe_models.Subscription.objects.get(customer__subscriber=event_shop.account)
        stripe_client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
        sandbox_flush(event_shop.sandbox)  # delivered and answered 2xx (the sandbox would retry anything else)
    waiting = StripeEvent.objects.filter(type="customer.subscription.updated", processed_at=None)
    assert waiting.count() == 1 and waiting.get().next_attempt_at > timezone.now()
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False  # not applied yet

    with time_machine.travel(waiting.get().next_attempt_at + timedelta(seconds=1)):
        assert sweep_stripe_events() == 1
    assert not StripeEvent.objects.filter(processed_at=None).exists()
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True


def test_a_customers_waiting_events_are_applied_in_one_turn_and_an_objects_older_updates_are_covered(
    client, event_shop, settings, stripe_client
):
    """Three updates of one subscription wait (the worker fell behind): the first one's task applies them all in
    one turn of the customer's lock, with one read of the subscription; the last update runs its handler, the
    two before it are done by it (covered), and the mirror is Stripe's latest."""
    subscribe_paying(client, event_shop)
    subscription = djstripe_models.Subscription.objects.get(customer__subscriber=event_shop.account)
    with _broker_down(settings):
        for n in range(3):
            stripe_client.v1.subscriptions.update(subscription.id, params={"metadata": {"round": str(n)}})
        sandbox_flush(event_shop.sandbox)
    waiting = list(StripeEvent.objects.filter(processed_at=None).order_by("stripe_created", "pk"))
    assert [e.type for e in waiting] == ["customer.subscription.updated"] * 3
    event_shop.sandbox.request("POST", "/_sandbox/requests", {"reset": "true"}, api_key=None)

    assert stripe_events.stripe_event_process(event_pk=waiting[0].pk) is True

    counts = event_shop.sandbox.request("GET", "/_sandbox/requests", api_key=None).body["counts"]
    assert counts.get("GET /v1/subscriptions/<sub_id>") == 1, counts
    assert not StripeEvent.objects.filter(processed_at=None).exists()
    last = waiting[-1]
    assert dict(StripeEventHandling.objects.filter(event=last).values_list("handler", "status")) == {
        "on_subscription_changed": HandlingStatus.SUCCEEDED
    }
    for older in waiting[:-1]:
        older.refresh_from_db()
        assert older.covered_by_id == last.pk and not older.handlings.exists()
    subscription.refresh_from_db()
    assert subscription.metadata == stripe_client.v1.subscriptions.retrieve(subscription.id).metadata.to_dict()
    assert subscription.metadata["round"] == "2"
    # Their own tasks, arriving afterwards, find them done.
    assert all(stripe_events.stripe_event_process(event_pk=e.pk) for e in waiting)
    assert StripeEventHandling.objects.filter(event__in=waiting).count() == 1


def test_a_handler_that_keeps_failing_gives_up_and_a_replay_finishes_it(client, event_shop):
    from django.db import connection

    from outbox.models import OutgoingEmail

    with connection.cursor() as cursor:  # PostgreSQL refuses the receipt's write, for now
        cursor.execute("ALTER TABLE billing_receipt ADD CONSTRAINT refuse_for_now CHECK (false) NOT VALID")
    subscribe_paying(client, event_shop)
    paid = StripeEvent.objects.get(type="invoice.paid")
    receipt = StripeEventHandling.objects.get(event=paid, handler="on_invoice_paid_dunning")
    delays = []
    while receipt.status == HandlingStatus.FAILED:
        delays.append(receipt.next_attempt_at - receipt.finished_at)
        with time_machine.travel(receipt.next_attempt_at + timedelta(seconds=1)):
            sweep_stripe_events()
        receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts) == (HandlingStatus.GAVE_UP, MAX_ATTEMPTS)
    assert [round(d.total_seconds() / 60) for d in delays] == [1, 2, 4, 8, 16, 32, 64, 128, 240]  # capped at 4 h
    paid.refresh_from_db()
    assert paid.processed_at is None and paid.next_attempt_at is None  # waits for staff
    assert sweep_stripe_events() == 0

    with connection.cursor() as cursor:  # the database takes it again
        cursor.execute("ALTER TABLE billing_receipt DROP CONSTRAINT refuse_for_now")
    out = StringIO()
    call_command("replay_stripe_events", "--gave-up", stdout=out)

    assert "1 unfinished: 1 now processed, 0 still failing" in out.getvalue()
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts) == (HandlingStatus.SUCCEEDED, MAX_ATTEMPTS + 1)
    assert Receipt.objects.filter(account=event_shop.account).count() == 1
    assert [m.subject for m in mail.outbox if "receipt" in m.subject] == [
        OutgoingEmail.objects.get(key=f"receipt:{paid.object_id}").subject
    ]


def test_the_replay_command_needs_a_selection(db):
    with pytest.raises(CommandError, match="Say which events"):
        call_command("replay_stripe_events")


def test_every_handler_of_an_event_shares_one_read_of_each_object(client, event_shop):
    """invoice.paid has four handlers (mirror, ledger, dunning, fraud), each needing the invoice (and the mirror
    its subscription): Stripe is asked for each object once, counted at the sandbox."""
    subscribe_paying(client, event_shop)
    paid = StripeEvent.objects.get(type="invoice.paid")
    body = _event_body(event_shop, paid.stripe_id)
    paid.delete()  # delivered anew, as if for the first time (every handler runs again)
    event_shop.sandbox.request("POST", "/_sandbox/requests", {"reset": "true"}, api_key=None)

    assert _post(event_shop, body, _signed(event_shop, body)).status_code == 200

    counts = event_shop.sandbox.request("GET", "/_sandbox/requests", api_key=None).body["counts"]
    reads = {route: n for route, n in counts.items() if route.startswith("GET ")}
    assert reads.get("GET /v1/invoices/<invoice_id>") == 1, counts
    assert all(n == 1 for n in reads.values()), counts
    assert StripeEvent.objects.get(stripe_id=paid.stripe_id).processed_at is not None


def test_a_worker_waits_only_so_long_for_another_workers_event_of_the_same_customer(client, event_shop, monkeypatch):
    """While one worker holds a customer's events, another gives up waiting after LOCK_WAIT and is free again;
    the event stays due, and is applied once the first is done."""
    import psycopg
    from django.db import OperationalError, connection

    from billing.stripe import ordering

    subscribe_paying(client, event_shop)
    paid = StripeEvent.objects.get(type="invoice.paid")
    StripeEvent.objects.filter(pk=paid.pk).update(processed_at=None)
    StripeEventHandling.objects.filter(event=paid).delete()
    monkeypatch.setattr(ordering, "LOCK_WAIT", timedelta(milliseconds=200))
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"stripe-events:{paid.customer_id}"])
        with pytest.raises(OperationalError, match="lock timeout"):
            stripe_events.stripe_event_process(event_pk=paid.pk)
        paid.refresh_from_db()
        assert paid.processed_at is None and not paid.handlings.exists()
    # The other worker is done (its session ended): the event is applied now.
    assert stripe_events.stripe_event_process(event_pk=paid.pk) is True
    assert set(paid.handlings.values_list("status", flat=True)) == {HandlingStatus.SUCCEEDED}


def test_our_own_events_of_a_checkout_are_recorded_once_whatever_is_applied_again(client, event_shop, stripe_client):
    """invoice.paid, subscription.changed and account.activated come out of the checkout's Stripe events, in their
    handlers' transactions; the invoice's handlers run again from scratch (a replay) and nothing is recorded twice:
    no second event, receipt or email."""
    from collections import Counter

    from billing.stripe.events import stripe_event_process
    from outbox.models import DomainEvent, OutgoingEmail

    subscribe_paying(client, event_shop)
    account = event_shop.account

    def ours():
        return Counter(DomainEvent.objects.filter(account_id=account.pk).values_list("type", flat=True))

    recorded = ours()
    assert recorded["invoice.paid"] == 1 and recorded["account.activated"] == 1, recorded
    assert recorded["subscription.changed"] >= 1 and not recorded["invoice.payment_failed"]
    paid = StripeEvent.objects.get(type="invoice.paid")
    invoice = stripe_client.v1.invoices.retrieve(paid.object_id)
    event = DomainEvent.objects.get(type="invoice.paid")
    assert event.data == {
        "account": str(account.public_id),
        "invoice": invoice.id,
        "amount_paid": invoice.amount_paid,
        "currency": invoice.currency,
        "subscription": invoice.parent.subscription_details.subscription,
    }
    changed = DomainEvent.objects.filter(type="subscription.changed").order_by("created_at").last()
    assert (changed.data["status"], changed.data["plan"]) == ("active", "pro_month"), changed.data

    StripeEvent.objects.filter(pk=paid.pk).update(processed_at=None)
    StripeEventHandling.objects.filter(event=paid).delete()
    assert stripe_event_process(event_pk=paid.pk) is True
    assert ours() == recorded
    assert Receipt.objects.filter(account=account).count() == 1
    assert OutgoingEmail.objects.filter(key=f"receipt:{invoice.id}").count() == 1
