"""Sending the deliveries of our domain events: signed HTTP webhooks and broker publishers.

- **Each delivery on its own:** claimed for a lease (a conditional UPDATE), sent, recorded. An endpoint that times
  out, answers 5xx, 4xx or a redirect (never followed: the URL is the one its owner registered) is retried on its
  own schedule and never holds another endpoint's deliveries or the broker's.
- **Retried for three days,** Stripe's schedule (`RETRY_DELAYS`: 12 attempts within 72 hours), then failed: visible
  in the delivery log, sent again by a manual redelivery (the API, the owner's page, the admin).
- **At least once:** a relay killed after the receiver answered and before the row is marked sends it again after
  the lease; receivers deduplicate on the event's `id` (the broker message's `message_id`).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from outbox.models import DeliveryStatus, DomainEvent, EventDelivery
from outbox.signing import HEADER, signature_header

logger = logging.getLogger(__name__)

# Seconds before attempt 2, 3, ... (Stripe's: 1 min, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 12 h x3, 8 h 24 min).
RETRY_DELAYS = (60, 300, 1800, 7200, 18000, 36000, 36000, 43200, 43200, 43200, 30240)
LEASE = timedelta(minutes=2)  # longer than one send may take (the timeouts below)
TIMEOUT = (5, 10)  # connect, read: a slow endpoint costs a relay at most this, then waits its retry
BATCH = 500


def event_body(event: DomainEvent) -> bytes:
    """The JSON every target receives, the same bytes at every attempt (the signature covers them)."""
    return json.dumps(
        {
            "id": event.public_id,
            "object": "event",
            "type": event.type,
            "api_version": event.version,
            "created": int(event.occurred_at.timestamp()),
            "account": event.data.get("account"),
            "data": event.data,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def deliveries_send_for_event(*, event_pk) -> int:
    due = EventDelivery.objects.filter(event_id=event_pk, status=DeliveryStatus.PENDING)
    return sum(delivery_send(delivery_pk=pk) for pk in due.values_list("pk", flat=True))


def deliveries_send_due(*, limit: int = BATCH) -> int:
    """Send every due delivery (a lost task, a lease run out, a retry's time come); how many succeeded."""
    due = EventDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
    return sum(
        delivery_send(delivery_pk=pk) for pk in due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )


def delivery_send(*, delivery_pk: int) -> bool:
    """Send one due delivery if no other relay holds it; True when it succeeded."""
    now = timezone.now()
    claimed = EventDelivery.objects.filter(
        pk=delivery_pk, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + LEASE, attempts=F("attempts") + 1, last_attempt_at=now)
    if not claimed:
        return False
    delivery = EventDelivery.objects.select_related("event", "endpoint").get(pk=delivery_pk)
    try:
        status = _send(delivery)
    except Exception as error:  # a refused connection, a timeout, a broker down: retried on the schedule
        return _failed(delivery, None, f"{type(error).__name__}: {error}")
    if status is not None and not 200 <= status < 300:
        return _failed(delivery, status, f"answered {status}")
    EventDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SUCCEEDED,
        delivered_at=timezone.now(),
        next_attempt_at=None,
        response_status=status,
        last_error="",
    )
    return True


def _send(delivery: EventDelivery) -> int | None:
    body = event_body(delivery.event)
    if delivery.target.startswith("broker:"):
        broker_publisher(delivery.target.removeprefix("broker:")).publish(
            message_id=delivery.event.public_id, routing_key=delivery.event.type, body=body
        )
        return None
    endpoint = delivery.endpoint
    reply = requests.post(
        endpoint.url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Tollbooth-Webhooks/1",
            HEADER: signature_header(secret=endpoint.secret, body=body),
            "Tollbooth-Event-Id": delivery.event.public_id,
            "Tollbooth-Delivery-Attempt": str(delivery.attempts),
        },
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    return reply.status_code


def _failed(delivery: EventDelivery, status: int | None, error: str) -> bool:
    attempts = delivery.attempts
    gave_up = attempts > len(RETRY_DELAYS)
    logger.warning(
        "Delivery %s of %s to %s failed (attempt %s): %s",
        delivery.pk,
        delivery.event_id,
        delivery.target,
        attempts,
        error,
    )
    EventDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED if gave_up else DeliveryStatus.PENDING,
        next_attempt_at=None if gave_up else delivery.last_attempt_at + timedelta(seconds=RETRY_DELAYS[attempts - 1]),
        response_status=status,
        last_error=error[:2000],
    )
    return False


_publishers: dict = {}


def broker_publisher(name: str):
    """The publisher settings.TOLLBOOTH_EVENT_BROKERS names (a class path and its options), one per process."""
    if name not in _publishers:
        config = dict(settings.TOLLBOOTH_EVENT_BROKERS[name])
        _publishers[name] = import_string(config.pop("class"))(**config)
    return _publishers[name]
