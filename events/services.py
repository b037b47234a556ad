"""Managing an account's webhook endpoints (owners and admins), and reading its events: scoped, checked, audited.

The outbox (outbox/) holds the rows and sends; this app is the account-facing side, above accounts. An endpoint's
URL must be http(s) and, unless settings.TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE (development and tests), reach a public
address: a merchant must not make us POST into our own network.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from accounts.errors import DomainError
from accounts.models import Account, User
from accounts.services import audit_record, require_manager
from outbox.catalogue import CATALOGUE
from outbox.events import event_redeliver
from outbox.models import DomainEvent, WebhookEndpoint
from outbox.signing import new_secret

MAX_ENDPOINTS = 16  # per account: Stripe's limit is 16 too


def webhook_endpoints_for(*, account: Account):
    return WebhookEndpoint.objects.filter(account_id=account.pk).order_by("created_at")


def events_for(*, account: Account):
    return DomainEvent.objects.filter(account_id=account.pk).order_by("-created_at", "-id")


def webhook_endpoint_create(
    *, account: Account, actor: User, url: str, event_types: list[str], description: str = ""
) -> WebhookEndpoint:
    require_manager(account=account, actor=actor)
    _check_url(url)
    _check_types(event_types)
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=account.pk)  # the count below holds against a concurrent create
        if webhook_endpoints_for(account=account).count() >= MAX_ENDPOINTS:
            raise DomainError(f"An account has at most {MAX_ENDPOINTS} webhook endpoints.", code="too_many_endpoints")
        endpoint = WebhookEndpoint.objects.create(
            account_id=account.pk,
            url=url,
            secret=new_secret(),
            event_types=sorted(set(event_types)),
            description=description,
        )
        audit_record(
            account=account,
            actor=actor,
            action="webhook_endpoint.created",
            target=f"webhook_endpoint:{endpoint.pk}",
            after={"url": url, "event_types": endpoint.event_types},
        )
    return endpoint


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, account: Account, actor: User, changes: dict):
    require_manager(account=account, actor=actor)
    if "url" in changes:
        _check_url(changes["url"])
    if "event_types" in changes:
        _check_types(changes["event_types"])
        changes = {**changes, "event_types": sorted(set(changes["event_types"]))}
    if changes.pop("roll_secret", False):
        changes["secret"] = new_secret()
    before = {name: getattr(endpoint, name) for name in changes if name != "secret"}
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk, account_id=account.pk).update(**changes)
        audit_record(
            account=account,
            actor=actor,
            action="webhook_endpoint.updated",
            target=f"webhook_endpoint:{endpoint.pk}",
            before=before,
            after={name: value for name, value in changes.items() if name != "secret"}
            | ({"secret": "rolled"} if "secret" in changes else {}),
        )
    endpoint.refresh_from_db()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, account: Account, actor: User) -> None:
    require_manager(account=account, actor=actor)
    with transaction.atomic():
        audit_record(
            account=account,
            actor=actor,
            action="webhook_endpoint.deleted",
            target=f"webhook_endpoint:{endpoint.pk}",
            before={"url": endpoint.url},
        )
        endpoint.delete()  # its delivery log goes with it


def event_redeliver_for(*, event: DomainEvent, account: Account, actor: User, endpoint=None) -> int:
    require_manager(account=account, actor=actor)
    queued = event_redeliver(event=event, endpoint=endpoint)
    audit_record(
        account=account,
        actor=actor,
        action="event.redelivered",
        target=f"event:{event.public_id}",
        after={"deliveries": queued, "endpoint": endpoint.public_id if endpoint else None},
    )
    return queued


def _check_types(event_types) -> None:
    unknown = sorted(set(event_types or ()) - set(CATALOGUE))
    if unknown:
        raise DomainError(f"Unknown event types: {', '.join(unknown)}.", field="event_types", code="unknown_event_type")


def _check_url(url: str) -> None:
    parts = urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DomainError("Give a full http(s) URL.", field="url", code="invalid_url")
    if settings.TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE:
        return
    if parts.scheme != "https":
        raise DomainError("Webhook URLs must use https.", field="url", code="invalid_url")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except OSError:
        raise DomainError("This host name does not resolve.", field="url", code="invalid_url") from None
    if any(not ipaddress.ip_address(address.split("%")[0]).is_global for address in addresses):
        raise DomainError("Webhook URLs must reach a public address.", field="url", code="private_url")
