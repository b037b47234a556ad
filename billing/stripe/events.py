"""Applying Stripe's events: stored once at intake, then run through their handlers by a worker.

- **Once:** the event row is unique on Stripe's id; a delivery seen before is acknowledged and not queued again.
- **In order per customer:** one customer's events are applied one at a time, under a PostgreSQL advisory lock
  on the customer's id (on the object's id for events of no customer). A lock, not a broker routing key: it
  holds whatever broker is used, however many workers run, for retries and replays alike, and costs one
  round trip. Inside it every handler re-reads the object (once for all of them: `stripe_reads_shared`), so
  the state applied last is Stripe's latest: an older event, applied after a newer one, writes the newer state.
- **A batch per turn:** the worker holding a customer's lock applies every event of that customer waiting
  then (up to `BATCH_LIMIT`), in Stripe's order (`created`), with one read of each object for the whole batch:
  all of them were received before that read, so it is at least as new as any of them. Of several events of
  the same type and object only the last runs; the earlier ones are `covered_by` it. The busier a customer,
  the less each of its events costs, which is what lets a worker that fell behind catch up.
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

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from psycopg.types.json import Json

from billing.models import HandlingStatus, StripeEvent, StripeEventHandling
from billing.stripe.client import stripe_reads_shared
from billing.stripe.handlers import handlers_for
from billing.stripe.ordering import customer_serialized

logger = logging.getLogger(__name__)

# An event not processed this long after intake or after its last start goes to a worker again.
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 10  # with the backoff below: retries over about 17 hours, then it waits for a replay
SWEEP_BATCH = 500
BATCH_LIMIT = 100  # one customer's events applied in one turn of its lock


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, ... minutes after the attempts so far, at most 4 hours apart."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=4))


def stripe_event_store(*, payload: dict) -> tuple[int, bool]:
    """Store a verified event once, due for the sweeper after `LEASE` should its task be lost. Returns
    (the row's pk, created); the caller queues a new one (`billing.tasks.stripe_event_enqueue`) after commit.

    One statement, in the request's own autocommit: `INSERT … ON CONFLICT DO NOTHING` is the unique constraint
    deciding, so two deliveries of one event at once store it once (a get_or_create took a savepoint, a read
    and a write, and a second read when it lost the race)."""
    obj = payload["data"]["object"]
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_stripeevent (stripe_id, type, livemode, object_id, customer_id, stripe_created,"
            " payload, received_at, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (stripe_id) DO NOTHING RETURNING id",
            [
                payload["id"],
                payload["type"],
                bool(payload.get("livemode")),
                str(obj.get("id") or ""),
                _customer_of(obj),
                datetime.fromtimestamp(payload["created"], tz=UTC),
                Json(payload),
                now,
                now + LEASE,
            ],
        )
        inserted = cursor.fetchone()
    if inserted is not None:
        return inserted[0], True
    return StripeEvent.objects.filter(stripe_id=payload["id"]).values_list("pk", flat=True).get(), False


def _customer_of(obj: dict) -> str:
    """The customer an event's object belongs to (the ordering key): a customer is its own."""
    if obj.get("object") == "customer":
        return str(obj.get("id") or "")
    customer = obj.get("customer")
    return str((customer.get("id") if isinstance(customer, dict) else customer) or "")


def _ordering_key(event: StripeEvent) -> str:
    return event.customer_id or event.object_id or event.stripe_id


def stripe_event_process(*, event_pk: int, retry_gave_up: bool = False) -> bool:
    """Apply the event, with whatever else its customer has waiting (a batch); True when the event is done.

    `retry_gave_up` (a replay) also runs the event's handlers that ran out of attempts, and ones whose backoff
    has not run out."""
    event = StripeEvent.objects.filter(pk=event_pk).defer("payload").first()
    if event is None or event.processed_at is not None:
        return True
    with customer_serialized(_ordering_key(event)):
        batch = _batch_take(event)
        if event.pk not in {e.pk for e in batch}:
            return True  # another worker applied it while this one waited for the lock
        with stripe_reads_shared():
            done = _batch_apply(batch, retry_gave_up={event.pk} if retry_gave_up else set())
        return event.pk in done


def _batch_take(event: StripeEvent) -> list[StripeEvent]:
    """The event and the customer's other events waiting (at most `BATCH_LIMIT`), oldest at Stripe first, each
    leased for this worker. Under the customer's lock, so no other worker holds any of them. Events waiting
    for a handler's backoff stay out (their own retry runs them)."""
    if event.customer_id:
        same = Q(customer_id=event.customer_id)
    elif event.object_id:
        same = Q(customer_id="", object_id=event.object_id)
    else:
        same = Q(pk=event.pk)
    waiting = StripeEventHandling.objects.filter(
        event=OuterRef("pk"), status__in=[HandlingStatus.FAILED, HandlingStatus.GAVE_UP]
    )
    unprocessed = StripeEvent.objects.filter(same, processed_at__isnull=True).defer("payload")
    batch = list(unprocessed.filter(pk=event.pk))
    batch += unprocessed.exclude(pk=event.pk).exclude(Exists(waiting)).order_by("stripe_created", "pk")[:BATCH_LIMIT]
    batch.sort(key=lambda e: (e.stripe_created, e.pk))
    StripeEvent.objects.filter(pk__in=[e.pk for e in batch]).update(next_attempt_at=timezone.now() + LEASE)
    return batch


def _batch_apply(batch: list[StripeEvent], *, retry_gave_up: set[int]) -> set[int]:
    """Run the batch's events in Stripe's order; the pks of those done.

    An event is covered by a later one of the same type and object: the same handlers, reading the same object
    (every handler re-reads it, and the read is shared), would do again what the later one does, so only the
    last runs, at its place in the order, and the earlier ones are done when it is (`covered_by`). Twenty
    updates of a subscription waiting behind a slow one are one refresh, not twenty; a handler that fails
    leaves the events it covers waiting, and they run themselves next time."""
    last: dict[tuple[str, str], StripeEvent] = {}
    for event in batch:
        if event.object_id:
            last[(event.type, event.object_id)] = event
    covered: dict[int, list[int]] = {}
    for event in batch:
        coverer = last.get((event.type, event.object_id), event)
        if coverer.pk != event.pk:
            covered.setdefault(coverer.pk, []).append(event.pk)
    handlings: dict[tuple[int, str], StripeEventHandling] = {
        (h.event_id, h.handler): h for h in StripeEventHandling.objects.filter(event__in=[e.pk for e in batch])
    }
    done: set[int] = set()
    for event in batch:
        if event.object_id and last[(event.type, event.object_id)].pk != event.pk:
            continue  # done with the event that covers it
        retry_at = _handlers_run(event, handlings, retry_gave_up=event.pk in retry_gave_up)
        if retry_at is not _DONE:
            StripeEvent.objects.filter(pk=event.pk).update(next_attempt_at=retry_at)
            continue
        now = timezone.now()
        StripeEvent.objects.filter(pk=event.pk).update(processed_at=now, next_attempt_at=None)
        if covered.get(event.pk):
            StripeEvent.objects.filter(pk__in=covered[event.pk]).update(
                processed_at=now, next_attempt_at=None, covered_by=event
            )
            # A covered event that had run before (a retry) keeps its outcomes; the unfinished ones are done too.
            StripeEventHandling.objects.filter(event__in=covered[event.pk]).exclude(
                status=HandlingStatus.SUCCEEDED
            ).update(status=HandlingStatus.COVERED, next_attempt_at=None)
        done |= {event.pk, *covered.get(event.pk, [])}
    return done


_DONE = object()


def _handlers_run(event: StripeEvent, handlings: dict, *, retry_gave_up: bool):
    """Run the event's handlers that have not succeeded, in order; `_DONE`, or when to try again (None: gave up).
    The handlers after one that fails wait for it (they may build on it: dunning on the status the mirror sets);
    the ones before it are done and stay done."""
    handlers = handlers_for(event.type)
    for handler in handlers:
        status, retry_at = _handler_run(event, handler, handlings.get((event.pk, handler.name)), retry_gave_up)
        if status != HandlingStatus.SUCCEEDED:
            return retry_at
    return _DONE


def _handler_run(event: StripeEvent, handler, handling: StripeEventHandling | None, retry_gave_up: bool):
    now = timezone.now()
    if handling is None:
        # Its first run: the outcome row is written as started (one insert), committed before the handler runs.
        handling = StripeEventHandling.objects.create(event=event, handler=handler.name, attempts=1, started_at=now)
        return _handler_attempt(event, handler, handling)
    if handling.status == HandlingStatus.SUCCEEDED:
        return handling.status, None
    if not retry_gave_up and (
        handling.status == HandlingStatus.GAVE_UP
        or (handling.status == HandlingStatus.FAILED and handling.next_attempt_at and handling.next_attempt_at > now)
    ):
        return handling.status, handling.next_attempt_at
    # Started is committed before the handler runs: a worker killed inside it leaves the attempt on record.
    handling.attempts += 1
    StripeEventHandling.objects.filter(pk=handling.pk).update(
        status=HandlingStatus.STARTED, attempts=handling.attempts, started_at=now, next_attempt_at=None
    )
    return _handler_attempt(event, handler, handling)


def _handler_attempt(event: StripeEvent, handler, handling: StripeEventHandling):
    try:
        with transaction.atomic():
            handler.function(event)
            StripeEventHandling.objects.filter(pk=handling.pk).update(
                status=HandlingStatus.SUCCEEDED, finished_at=timezone.now(), last_error=""
            )
        handling.status = HandlingStatus.SUCCEEDED
        return HandlingStatus.SUCCEEDED, None
    except Exception:
        error = traceback.format_exc(limit=8)
        gave_up = handling.attempts >= MAX_ATTEMPTS
        retry_at = None if gave_up else timezone.now() + retry_delay(handling.attempts)
        logger.exception(
            "Stripe event %s: handler %s failed (attempt %s)", event.stripe_id, handler.name, handling.attempts
        )
        handling.status = HandlingStatus.GAVE_UP if gave_up else HandlingStatus.FAILED
        handling.next_attempt_at = retry_at
        StripeEventHandling.objects.filter(pk=handling.pk).update(
            status=handling.status, finished_at=timezone.now(), last_error=error[-4000:], next_attempt_at=retry_at
        )
        return handling.status, retry_at


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
