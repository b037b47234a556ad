"""Billing's Celery tasks: thin, by id, idempotent."""

import logging

from celery import shared_task
from django.conf import settings

from accounts.models import Account
from billing.dunning import cases as dunning_cases
from billing.ledger.push import PUSH_BATCH, ledger_entries_push_due
from billing.notices.reminders import reminders_send_due, trials_end_due
from billing.reconciliation.run import reconciliation_run
from billing.stripe.customers import customer_ensure
from billing.stripe.events import stripe_event_process, stripe_events_claim_due
from billing.subscriptions import seats
from billing.subscriptions.changes import scheduled_changes_apply_due
from billing.usage.bursts import usage_bursts_scan

logger = logging.getLogger(__name__)


@shared_task(
    name="billing.ensure_stripe_customer", acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8
)
def ensure_stripe_customer(account_id: int) -> None:
    # Retried on any error (Stripe unreachable, say): the customer is created under an idempotency key
    # derived from the account, so a retry never makes a second one.
    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        return
    customer_ensure(account=account)


@shared_task(name="billing.process_stripe_event", acks_late=True, reject_on_worker_lost=True)
def process_stripe_event(event_pk: int) -> None:
    # acks_late: a worker killed mid-event leaves the message unacknowledged, and the broker gives it back (Redis:
    # after its visibility timeout, an hour by default); the sweeper brings the event back sooner (its 2-minute
    # lease). Either way the handlers that had succeeded are not run again (their outcome rows say so).
    stripe_event_process(event_pk=event_pk)


@shared_task(name="billing.sweep_stripe_events")
def sweep_stripe_events() -> int:
    # Events whose task was lost (a broker down at intake, a killed worker) or whose handler's retry is due.
    due = stripe_events_claim_due()
    for event_pk in due:
        stripe_event_enqueue(event_pk)
    return len(due)


def stripe_event_enqueue(event_pk: int) -> None:
    """Queue a stored event's processing. The broker being down is no error at intake: the event waits in
    PostgreSQL and the sweeper queues it when the broker is back."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        process_stripe_event.delay(event_pk)  # "queueing" is running: a crash here is the handler's, not the broker's
        return
    try:
        process_stripe_event.delay(event_pk)
    except Exception as error:  # kombu's OperationalError, a refused connection, a DNS failure...
        logger.warning("Stripe event %s waits for the sweeper: could not queue it (%s)", event_pk, error)


@shared_task(
    name="billing.sync_seat_quantity", acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8
)
def sync_seat_quantity(account_id: int, change_id: int) -> None:
    # Safe to redeliver and retry: the quantity write is idempotent per change.
    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        return
    seats.subscription_sync_seats(account=account, change_id=change_id)


@shared_task(name="billing.rate_closed_usage_periods", acks_late=True)
def rate_closed_usage_periods() -> int:
    # Beat runs this every few minutes. Redelivery is harmless: periods are claimed open → rated in the
    # transaction that writes their ledger entries. The push follows once the rating has committed.
    from billing.ledger.rate import usage_periods_rate_closed

    rated = usage_periods_rate_closed()
    push_ledger_entries.delay()
    return rated


@shared_task(name="billing.push_ledger_entries", acks_late=True)
def push_ledger_entries() -> int:
    # Each entry is claimed for a lease before its Stripe write, which carries the entry's idempotency
    # key and is looked up by its ledger key on a retry: running this twice, or after a crash, bills once.
    # A full batch means more are due (a backlog after a Stripe outage): the next run is queued at once
    # instead of waiting for beat, so a backlog drains at Stripe's pace, in minutes.
    pushed = ledger_entries_push_due()
    if pushed >= PUSH_BATCH:
        push_ledger_entries.delay()
    return pushed


@shared_task(name="billing.apply_due_plan_changes", acks_late=True)
def apply_due_plan_changes() -> None:
    # Each change is claimed with a conditional UPDATE and written with a key of its own: overlapping runs
    # and redeliveries are harmless.
    scheduled_changes_apply_due()


@shared_task(name="billing.send_reminders")
def send_reminders() -> None:
    # Exactly once per reminder by a unique row; running hourly only bounds how late one can be.
    reminders_send_due()


@shared_task(name="billing.end_trials")
def end_trials() -> None:
    trials_end_due()


@shared_task(name="billing.dunning_enforce_grace")
def dunning_enforce_grace() -> None:
    # Suspensions are audited status moves that skip accounts already moved: re-runs are harmless.
    dunning_cases.dunning_enforce_grace()


@shared_task(name="billing.reconcile")
def reconcile() -> None:
    # Read-mostly: it reports, and its only writes are re-syncs from Stripe (never a charge), so a rerun is harmless.
    run = reconciliation_run()
    logger.info(
        "Reconciliation: %s difference(s), %s healed, %s left for staff",
        run.differences_found,
        run.differences_healed,
        run.differences_unhealed,
    )


# Fraud's checks that start from what billing reads (usage). They keep their `fraud.` names: beat schedules name them.
@shared_task(name="fraud.scan_usage_bursts")
def scan_usage_bursts() -> None:
    usage_bursts_scan()
