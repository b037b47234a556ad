"""Recording our domain events and fanning them out: one delivery per webhook endpoint that wants the type
(the account's own and the platform's) and per broker publisher, all in the caller's transaction.

`event_record` is called by the services that make the change (accounts, billing, fraud), inside their
transaction, with a key naming what the event reports: the same key twice (a handler retried after it committed)
is one event. After commit a task sends the deliveries; beat's sweep sends what it did not (outbox.deliveries).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from outbox.catalogue import CATALOGUE
from outbox.models import DeliveryStatus, DomainEvent, EventDelivery, WebhookEndpoint


def event_record(
    *, type: str, key: str, account_id: int | None, data: dict, occurred_at: datetime | None = None
) -> DomainEvent | None:
    """Write the event and its deliveries; None when `key` was recorded before."""
    kind = CATALOGUE[type]  # an unknown type is a programming error: fail loudly in tests
    missing = set(kind.fields) - set(data)
    if missing:
        raise ValueError(f"{type} needs {sorted(missing)}")
    with transaction.atomic():
        event, created = DomainEvent.objects.get_or_create(
            key=key,
            defaults={
                "type": type,
                "version": kind.version,
                "account_id": account_id,
                "data": data,
                "occurred_at": occurred_at or timezone.now(),
            },
        )
        if not created:
            return None
        now = timezone.now()
        deliveries = [
            EventDelivery(event=event, endpoint=endpoint, target=f"webhook:{endpoint.pk}", next_attempt_at=now)
            for endpoint in endpoints_for(account_id)
            if endpoint.wants(type)
        ] + [EventDelivery(event=event, target=f"broker:{name}", next_attempt_at=now) for name in settings_brokers()]
        EventDelivery.objects.bulk_create(deliveries)
    if deliveries:
        transaction.on_commit(partial(_deliver_soon, event.pk))
    return event


def endpoints_for(account_id: int | None) -> list[WebhookEndpoint]:
    """The account's enabled endpoints and the platform's (settings.TOLLBOOTH_PLATFORM_WEBHOOKS)."""
    platform_endpoints_ensure()
    owners = [None] if account_id is None else [None, account_id]
    return list(WebhookEndpoint.objects.filter(enabled=True).filter(_account_in(owners)))


def _account_in(owners):
    from django.db.models import Q

    query = Q(account_id__isnull=True) if None in owners else Q()
    ids = [owner for owner in owners if owner is not None]
    return query | Q(account_id__in=ids) if ids else query


_platform_synced: tuple | None = None


def platform_endpoints_ensure() -> None:
    """The platform's endpoints are settings (url and secret); their rows exist so deliveries can log to them.
    Synced once per process and settings value: a URL no longer in the settings is disabled."""
    global _platform_synced
    wanted = tuple((hook["url"], hook["secret"], tuple(hook.get("event_types") or ())) for hook in _platform_hooks())
    if _platform_synced == wanted:
        return
    with transaction.atomic():
        WebhookEndpoint.objects.filter(account_id__isnull=True).exclude(url__in=[w[0] for w in wanted]).update(
            enabled=False
        )
        for url, secret, types in wanted:
            WebhookEndpoint.objects.update_or_create(
                account_id=None,
                url=url,
                defaults={"secret": secret, "event_types": list(types), "enabled": True, "description": "platform"},
            )
    _platform_synced = wanted


def _platform_hooks() -> list[dict]:
    return list(getattr(settings, "TOLLBOOTH_PLATFORM_WEBHOOKS", []) or [])


def settings_brokers() -> list[str]:
    return sorted((getattr(settings, "TOLLBOOTH_EVENT_BROKERS", {}) or {}).keys())


def event_redeliver(*, event: DomainEvent, endpoint: WebhookEndpoint | None = None) -> int:
    """Send the event's webhook deliveries again now (one endpoint's, or all), failed ones included; an endpoint
    added after the event gets a first delivery. How many are queued."""
    now = timezone.now()
    targets = (
        [endpoint] if endpoint is not None else [e for e in endpoints_for(event.account_id) if e.wants(event.type)]
    )
    queued = 0
    with transaction.atomic():
        for target in targets:
            delivery, created = EventDelivery.objects.get_or_create(
                event=event, target=f"webhook:{target.pk}", defaults={"endpoint": target, "next_attempt_at": now}
            )
            if not created:
                EventDelivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.PENDING).update(
                    status=DeliveryStatus.PENDING, next_attempt_at=now
                )
                EventDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(next_attempt_at=now)
            queued += 1
    transaction.on_commit(partial(_deliver_soon, event.pk))
    return queued


def _deliver_soon(event_pk) -> None:
    from outbox.tasks import queue_task

    queue_task("outbox.deliver_event", str(event_pk))
