"""Applying Stripe's events: stored once at intake, then run through their handlers by a worker.

- **Once:** the event row is unique on Stripe's id; a delivery seen before is acknowledged and not queued again.
- **In order per customer:** one customer's events are applied one at a time, under a PostgreSQL advisory lock
  on the customer's id (on the object's id for events of no customer). A lock, not a broker routing key: it
  holds whatever broker is used, however many workers run, for retries and replays alike, and costs one
  round trip. Inside it every handler re-reads the object (once for all of them: `stripe_reads_shared`), so
  the state applied last is Stripe's latest: an older event, applied after a newer one, writes the newer state.
- **Each handler alone:** each runs in its own transaction with its own outcome row, in registration order. A
  handler that raises is rolled back alone and retried with backoff; the ones before it succeeded and are not run
  again; the ones after it wait for it (they may build on it). After `MAX_ATTEMPTS` it gives up (visible in the
  admin; `replay_stripe_events` runs it again).
- **Nothing lost:** the event waits in PostgreSQL with a due time (`next_attempt_at`), so a task the broker
  lost, a worker killed mid-handler, or a broker down at intake leaves an event the sweeper (beat, every
  minute: `billing.tasks.sweep_stripe_events`) hands to a worker again.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.models import HandlingStatus, StripeEvent, StripeEventHandling
from billing.stripe.client import stripe_reads_shared
from billing.stripe.handlers import handlers_for
from billing.stripe.ordering import customer_serialized

logger = logging.getLogger(__name__)

# An event not processed this long after intake or after its last start goes to a worker again.
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 10  # with the backoff below: retries over about 17 hours, then it waits for a replay
SWEEP_BATCH = 500


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, ... minutes after the attempts so far, at most 4 hours apart."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=4))


def stripe_event_store(*, payload: dict) -> tuple[StripeEvent, bool]:
    """Store a verified event once, due for the sweeper after `LEASE` should its task be lost. Returns
    (event, created); the caller queues a new one (`billing.tasks.stripe_event_enqueue`) after commit."""
    obj = payload["data"]["object"]
    with transaction.atomic():
        event, created = StripeEvent.objects.get_or_create(
            stripe_id=payload["id"],
            defaults={
                "type": payload["type"],
                "livemode": bool(payload.get("livemode")),
                "object_id": str(obj.get("id") or ""),
                "customer_id": _customer_of(obj),
                "stripe_created": datetime.fromtimestamp(payload["created"], tz=UTC),
                "payload": payload,
                "next_attempt_at": timezone.now() + LEASE,
            },
        )
    return event, created


def _customer_of(obj: dict) -> str:
    """The customer an event's object belongs to (the ordering key): a customer is its own."""
    if obj.get("object") == "customer":
        return str(obj.get("id") or "")
    customer = obj.get("customer")
    return str((customer.get("id") if isinstance(customer, dict) else customer) or "")


def stripe_event_process(*, event_pk: int, retry_gave_up: bool = False) -> bool:
    """Run the event's handlers that have not succeeded yet; True when all have. `retry_gave_up` (a replay)
    also runs handlers that ran out of attempts, and ones whose backoff has not run out."""
    event = StripeEvent.objects.filter(pk=event_pk).first()
    if event is None or event.processed_at is not None:
        return True
    with customer_serialized(event.customer_id or event.object_id or event.stripe_id):
        event.refresh_from_db()
        if event.processed_at is not None:
            return True  # another worker finished it while this one waited for the lock
        StripeEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() + LEASE)
        with stripe_reads_shared():
            for handler in handlers_for(event.type):
                status, retry_at = _run_handler(event, handler, retry_gave_up)
                if status != HandlingStatus.SUCCEEDED:
                    # The handlers after it wait for it (they may build on it: dunning on the status the mirror
                    # sets); the ones before it are done and stay done.
                    StripeEvent.objects.filter(pk=event.pk).update(next_attempt_at=retry_at)
                    return False
        StripeEvent.objects.filter(pk=event.pk).update(processed_at=timezone.now(), next_attempt_at=None)
        return True


def _run_handler(event: StripeEvent, handler, retry_gave_up: bool) -> tuple[str, datetime | None]:
    handling, _ = StripeEventHandling.objects.get_or_create(event=event, handler=handler.name)
    now = timezone.now()
    if handling.status == HandlingStatus.SUCCEEDED:
        return handling.status, None
    if not retry_gave_up and (
        handling.status == HandlingStatus.GAVE_UP
        or (handling.status == HandlingStatus.FAILED and handling.next_attempt_at and handling.next_attempt_at > now)
    ):
        return handling.status, handling.next_attempt_at
    # Started is committed before the handler runs: a worker killed inside it leaves the attempt on record.
    StripeEventHandling.objects.filter(pk=handling.pk).update(
        status=HandlingStatus.STARTED, attempts=F("attempts") + 1, started_at=now, next_attempt_at=None
    )
    handling.refresh_from_db(fields=["attempts"])
    try:
        with transaction.atomic():
            handler.function(event)
            StripeEventHandling.objects.filter(pk=handling.pk).update(
                status=HandlingStatus.SUCCEEDED, finished_at=timezone.now(), last_error=""
            )
        return HandlingStatus.SUCCEEDED, None
    except Exception:
        error = traceback.format_exc(limit=8)
        gave_up = handling.attempts >= MAX_ATTEMPTS
        retry_at = None if gave_up else timezone.now() + retry_delay(handling.attempts)
        logger.exception(
            "Stripe event %s: handler %s failed (attempt %s)", event.stripe_id, handler.name, handling.attempts
        )
        StripeEventHandling.objects.filter(pk=handling.pk).update(
            status=HandlingStatus.GAVE_UP if gave_up else HandlingStatus.FAILED,
            finished_at=timezone.now(),
            last_error=error[-4000:],
            next_attempt_at=retry_at,
        )
        return (HandlingStatus.GAVE_UP if gave_up else HandlingStatus.FAILED), retry_at


def stripe_events_claim_due(*, limit: int = SWEEP_BATCH) -> list[int]:
    """The events to hand to a worker again (their lease ran out — a lost task — or a handler's retry time came),
    claimed: each one's due time moves a lease ahead, so the next sweep does not queue it again while this
    sweep's message waits in the queue or behind its customer's lock."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            StripeEvent.objects.select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        StripeEvent.objects.filter(pk__in=due).update(next_attempt_at=now + LEASE)
    return due


def stripe_events_replay(*, events) -> int:
    """Run the unfinished handlers of `events` again now (staff: by id, type or time range), gave-up ones too.
    Handlers that succeeded are not repeated. Returns how many events are fully processed afterwards."""
    done = 0
    for pk in events.filter(processed_at__isnull=True).values_list("pk", flat=True):
        done += stripe_event_process(event_pk=pk, retry_gave_up=True)
    return done
