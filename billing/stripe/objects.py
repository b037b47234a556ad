"""Reading Stripe's objects in a handler: re-read the object an event names (never trust the payload) and find
the Tollbooth account it belongs to; the small shape helpers every reader needs, once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from accounts.models import Account
from billing.stripe.client import retrieve_or_none, stripe_api_key, stripe_client

logger = logging.getLogger(__name__)


def account_for_customer(customer_id: str | None):
    """The Tollbooth account a Stripe customer belongs to: the mirror's subscriber, else the account its metadata
    names (then the mirror is linked, so the next lookup is local). None for strangers.

    Databases sharing a Stripe account reuse primary keys for other merchants, so a customer whose metadata
    carries `account_public_id` belongs only to the account of that public id; `account_id` alone (customers
    made before public ids) is trusted as before. dj-stripe links a mirror row by `account_id` on its own, so
    the mirror's subscriber is checked against the public id too.
    """
    from djstripe import models as djstripe_models

    if not customer_id:
        return None
    customer = djstripe_models.Customer.objects.filter(id=customer_id).select_related("subscriber").first()
    if customer is not None and customer.subscriber is not None:
        public_id = _metadata_public_id(customer.stripe_data.get("metadata"))
        return customer.subscriber if public_id in (None, str(customer.subscriber.public_id)) else None
    data = retrieve_or_none(stripe_client().v1.customers, customer_id)
    account = _account_from_metadata((data or {}).get("metadata") or {})
    if account is not None:
        mirrored = djstripe_models.Customer.sync_from_stripe_data(data, api_key=stripe_api_key())
        djstripe_models.Customer.objects.filter(pk=mirrored.pk).update(subscriber=account)
    return account


def _metadata_public_id(metadata) -> str | None:
    return str((metadata or {}).get("account_public_id") or "") or None


def _account_from_metadata(metadata: dict) -> Account | None:
    public_id = _metadata_public_id(metadata)
    if public_id is not None:
        try:
            return Account.objects.filter(public_id=uuid.UUID(public_id)).first()
        except ValueError:
            return None
    account_id = str(metadata.get("account_id") or "")
    return Account.objects.filter(pk=account_id).first() if account_id.isdigit() else None


def stripe_object_with_account(service, object_id: str | None, *, kind: str = "") -> tuple[dict | None, Account | None]:
    """Re-read the object `object_id` from a Stripe `service` (`stripe_client().v1.invoices`, say) and find its
    account by the object's `customer`.

    Returns (None, None) when Stripe has no such object any more, (object, None) for a stranger's object (logged
    when `kind` names it), else (object, account). Every webhook handler starts here.
    """
    data = retrieve_or_none(service, object_id)
    if data is None:
        return None, None
    account = account_for_customer(data.get("customer"))
    if account is None and kind:
        logger.warning("Stripe %s %s belongs to no Tollbooth account; ignored.", kind, object_id)
    return data, account


def stripe_id(value) -> str | None:
    """The id of an expandable field: the object's id when expanded, else the id itself."""
    return value.get("id") if isinstance(value, dict) else value


def stripe_time(value) -> datetime | None:
    """A Stripe timestamp (seconds since the epoch) as an aware datetime; None for none."""
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def invoice_subscription_id(invoice) -> str | None:
    """The subscription an invoice bills: `parent.subscription_details.subscription` (Stripe's API since
    2025-03-31.basil, and the sandbox, have no top-level `subscription` on an invoice). The old key is still read
    for payloads of older API versions (events stored before the upgrade)."""
    parent = invoice.get("parent") or {}
    subscription = (parent.get("subscription_details") or {}).get("subscription") or invoice.get("subscription")
    return stripe_id(subscription)
