"""Stripe's events applied by real Celery worker processes on a real broker (a redis-server of the test's own).

What eager mode cannot show: a worker killed in the middle of a handler, a broker that goes away and comes back,
two workers taking one customer's events at once. The app runs in pytest-django's live server (the sandbox delivers
its webhooks there) with eager mode off, so the intake queues each event on the broker; the workers
(tests/billing/worker_helpers.py) share the test's database. Waits poll for the state expected, with a generous
deadline; a handler is made to wait for real by a lock the test holds in a database session of its own.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account, AccountStatus, AuditLog
from billing.models import HandlingStatus, Receipt, StripeEvent, StripeEventHandling
from billing.stripe.events import LEASE
from billing.tasks import sweep_stripe_events
from tests.accounts.smtp_server import smtp_server_start
from tests.billing.event_helpers import sandbox_flush, subscribe_paying
from tests.billing.worker_helpers import REDIS_SERVER, RedisServer, Worker, transport_options, wait_for, worker_env

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        REDIS_SERVER is None, reason="redis-server is not installed: these tests start their own Redis as the broker"
    ),
]

SUCCEEDED, STARTED = HandlingStatus.SUCCEEDED, HandlingStatus.STARTED


@pytest.fixture
def mail_server():
    """An SMTP server the workers send to (the `smtp` fixture points this process's Django at one)."""
    state, server = smtp_server_start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def broker(settings, tmp_path):
    """The test's own redis-server; `use()` turns eager mode off in this process and queues on it from then on."""
    from config.celery import app

    server = RedisServer(tmp_path)
    server.start()
    saved = (app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_transport_options)
    state = SimpleNamespace(server=server, options=transport_options(3600))  # 3600 s: Kombu's default

    def use(*, visibility_timeout: int = 3600) -> None:
        state.options = transport_options(visibility_timeout)
        settings.CELERY_TASK_ALWAYS_EAGER = False  # stripe_event_enqueue reads it (pytest-django restores it)
        app.conf.task_always_eager = False
        app.conf.broker_url, app.conf.broker_transport_options = server.url, state.options
        app.amqp._producer_pool = None  # no pooled connection to another broker

    state.use = use
    yield state
    app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_transport_options = saved
    app.amqp._producer_pool = None
    server.stop()


@pytest.fixture
def workers(broker, sandbox, mail_server, tmp_path):
    """Start worker processes on the test's broker and database; every one is ended at teardown, killed if need be."""
    started: list[Worker] = []

    def start(name: str) -> Worker:
        env = worker_env(
            database=django_settings.DATABASES["default"],
            broker=broker.server.url,
            stripe_host=sandbox.base_url,
            stripe_key=sandbox.api_key,
            smtp_port=mail_server.port,
            options=broker.options,
        )
        worker = Worker(name, env, tmp_path / f"worker-{name}.log")
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


@contextmanager
def _held(sql: str, params: list):
    """Run `sql` in a database session of the test's own and keep its transaction open (its locks held) inside the
    block; rolled back after. Yields the session's backend pid."""
    db = django_settings.DATABASES["default"]
    session = psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None, dbname=db["NAME"]
    )
    try:
        session.execute(sql, params)
        yield session.info.backend_pid
    finally:
        session.close()  # an open transaction closed: rolled back


def _lock_waits(count: int = 1) -> dict[int, dict]:
    """The sessions of the test database waiting for a lock, when there are `count` (else none): pid -> what they
    wait for, behind whom, running what."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, wait_event, pg_blocking_pids(pid), query FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        waits = {pid: {"on": on, "behind": behind, "query": query} for pid, on, behind, query in cursor.fetchall()}
    return waits if len(waits) == count else {}


def _session_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def _outcomes(event) -> dict[str, tuple[str, int]]:
    return {h.handler: (h.status, h.attempts) for h in StripeEventHandling.objects.filter(event=event)}


def _all_processed() -> bool:
    return StripeEvent.objects.exists() and not StripeEvent.objects.filter(processed_at=None).exists()


def _receipts_emailed(server) -> list[str]:
    return [message for message in server.received if "Subject: Your Tollbooth receipt" in message]


def test_a_worker_killed_in_the_middle_of_a_handler_gets_the_event_back_and_its_effects_happen_once(
    client, event_shop, broker, workers, mail_server
):
    broker.use(visibility_timeout=5)  # Redis hands an unacknowledged task to another worker 5 s after delivering it
    subscribe_paying(client, event_shop)  # no worker yet: the checkout's events wait on the broker
    paid = StripeEvent.objects.get(type="invoice.paid")
    receipts = Receipt._meta.db_table
    # A receipt for the same invoice, inserted and not committed: the worker's insert of its receipt (in the third
    # handler, on_invoice_paid_dunning, before the email goes out) waits on the unique key until this one ends.
    hold = f"INSERT INTO {receipts} (account_id, stripe_invoice_id, amount_cents, currency, sent_at)"
    with _held(hold + " VALUES (%s, %s, 1, 'usd', now())", [event_shop.account.pk, paid.object_id]) as holder:
        first = workers("first")
        waits = wait_for(_lock_waits, what="the worker's receipt waiting behind the test's", log=first.log)
        [(killed_session, wait)] = waits.items()
        assert wait["behind"] == [holder] and receipts in wait["query"]
        assert _outcomes(paid) == {
            "on_invoice_changed": (SUCCEEDED, 1),
            "on_invoice_paid_settle_ledger": (SUCCEEDED, 1),
            "on_invoice_paid_dunning": (STARTED, 1),
        }
        first.kill()
        assert first.process.returncode == -9
        interrupted = first.tasks("received")[-1]  # prefetch of one: the task it was running
        assert interrupted not in first.tasks("succeeded")
    # The killed worker's session goes once its insert is let through, rolled back and its locks released.
    wait_for(lambda: not _session_alive(killed_session), what="the killed worker's database session ended")
    assert not Receipt.objects.exists() and not _receipts_emailed(mail_server)

    second = workers("second")
    wait_for(_all_processed, what="every event of the checkout processed", log=second.log)
    # The broker hands the killed worker's task back (not the sweeper); the event may have been applied before
    # it comes, in the batch of another task of the same customer: then it finds it done.
    wait_for(lambda: interrupted in second.tasks("succeeded"), what="the interrupted task redelivered", log=second.log)
    assert _outcomes(paid) == {
        "on_invoice_changed": (SUCCEEDED, 1),
        "on_invoice_paid_settle_ledger": (SUCCEEDED, 1),
        "on_invoice_paid_dunning": (SUCCEEDED, 2),
        "on_invoice_paid_trust": (SUCCEEDED, 1),
    }
    assert list(Receipt.objects.values_list("account_id", "stripe_invoice_id")) == [
        (event_shop.account.pk, paid.object_id)
    ]
    # The receipt left through the outbox: its own task, queued when the handler committed, on the same worker.
    from outbox.models import EmailStatus, OutgoingEmail

    wait_for(
        lambda: OutgoingEmail.objects.filter(key=f"receipt:{paid.object_id}", status=EmailStatus.SENT).exists(),
        what="the receipt sent from the outbox",
        log=second.log,
    )
    assert len(_receipts_emailed(mail_server)) == 1
    moves = AuditLog.objects.filter(account=event_shop.account, action="account.status_changed")
    assert [(move.before, move.after) for move in moves] == [({"status": "trialing"}, {"status": "active"})]
    event_shop.account.refresh_from_db()
    assert event_shop.account.status == AccountStatus.ACTIVE
    with time_machine.travel(timezone.now() + LEASE + timedelta(minutes=1)):
        assert sweep_stripe_events() == 0  # nothing left for the sweeper


def test_with_the_broker_down_the_intake_answers_and_processing_resumes_when_the_broker_is_back(
    client, event_shop, broker, workers, stripe_client, caplog
):
    subscribe_paying(client, event_shop)  # eagerly, before the test's broker is in use
    broker.use()
    worker = workers("steady")
    subscription = djstripe_models.Subscription.objects.get(customer__subscriber=event_shop.account)
    broker.server.stop()

    stripe_client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    sandbox_flush(event_shop.sandbox)

    [update] = StripeEvent.objects.filter(type="customer.subscription.updated", processed_at=None)
    assert f"Stripe event {update.pk} waits for the sweeper: could not queue it" in caplog.text
    reply = event_shop.sandbox.request("GET", "/_sandbox/deliveries", {"event": update.stripe_id}, api_key=None)
    assert [attempt["status_code"] for attempt in reply.body["data"]] == [200]  # answered at once: no retry
    assert update.next_attempt_at > timezone.now()  # waits for the sweeper
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False

    broker.server.start()  # the same port, empty
    with time_machine.travel(update.next_attempt_at + timedelta(seconds=1)):  # as beat would, once the lease is over
        assert sweep_stripe_events() == 1
    wait_for(
        lambda: StripeEvent.objects.filter(pk=update.pk, processed_at__isnull=False).exists(),
        what="the event applied by the worker, reconnected by itself",
        log=worker.log,
    )

    assert worker.process.poll() is None  # the same worker all along, which reconnected by itself
    assert "Connection to broker lost" in worker.log() and worker.log().count("Connected to redis") >= 2
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True
    assert stripe_client.v1.subscriptions.retrieve(subscription.id).cancel_at_period_end is True
    assert _outcomes(update) == {"on_subscription_changed": (SUCCEEDED, 1)}
    event_shop.account.refresh_from_db()
    assert event_shop.account.status == AccountStatus.ACTIVE


def test_two_workers_applying_two_events_of_one_customer_at_once_end_in_stripes_latest_state(
    client, event_shop, broker, workers, stripe_client
):
    subscribe_paying(client, event_shop)  # eagerly, before the test's broker is in use
    broker.use()
    one, two = workers("one"), workers("two")
    subscription = djstripe_models.Subscription.objects.get(customer__subscriber=event_shop.account)
    updates = StripeEvent.objects.filter(type="customer.subscription.updated", object_id=subscription.id)
    updates = updates.exclude(pk__in=list(updates.values_list("pk", flat=True)))  # the two to come, not the checkout's
    accounts = Account._meta.db_table
    # The account's row locked by the test: the worker that takes the first event waits for it inside the
    # customer's lock, so the second event is taken by the other worker while the first is still under way.
    with _held(f"SELECT id FROM {accounts} WHERE id = %s FOR UPDATE", [event_shop.account.pk]) as holder:
        stripe_client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
        stripe_client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": False})
        sandbox_flush(event_shop.sandbox)
        waits = wait_for(
            lambda: _lock_waits(count=2),
            what="both workers under way: one behind the test's row lock, the other behind the first",
            log=lambda: one.log() + two.log(),
        )
        [(first, _)] = [(pid, wait) for pid, wait in waits.items() if wait["behind"] == [holder]]
        [(_, second)] = [(pid, wait) for pid, wait in waits.items() if wait["behind"] == [first]]
        assert second["on"] == "advisory"  # the customer's lock: one event of a customer at a time

    wait_for(
        lambda: updates.count() == 2 and not updates.filter(processed_at=None).exists(),
        what="both events applied",
        log=lambda: one.log() + two.log(),
    )

    assert len(one.tasks("succeeded")) == 1 and len(two.tasks("succeeded")) == 1  # one event each
    # Each applied once: with an outcome of its own, or (the first one, when the second was stored before the
    # first worker took its customer's batch) covered by the second's run, which re-read the same subscription.
    for event in updates:
        assert tuple(_outcomes(event).values()) == ((SUCCEEDED, 1),) or (
            not _outcomes(event)
            and event.covered_by in updates
            and event.stripe_created <= event.covered_by.stripe_created
        )
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False
    assert stripe_client.v1.subscriptions.retrieve(subscription.id).cancel_at_period_end is False
    event_shop.account.refresh_from_db()
    assert event_shop.account.status == AccountStatus.ACTIVE
