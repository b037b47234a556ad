"""dj-stripe webhook handlers: translate the event into an id and call one service.

dj-stripe has already verified the signature and stored the event (unique on its id, so a duplicate
delivery never reaches here twice); handlers run inside that transaction, so an error rolls the event
back and Stripe redelivers it.
"""

from __future__ import annotations

import logging

from django.dispatch import receiver
from djstripe.signals import WEBHOOK_SIGNALS

from billing import dunning, ledger, services

logger = logging.getLogger(__name__)


def _object_id(event) -> str | None:
    return (event.data or {}).get("object", {}).get("id")


@receiver(WEBHOOK_SIGNALS["checkout.session.completed"])
def on_checkout_session_completed(sender, event, **kwargs):
    services.checkout_completed(session_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["customer.subscription.created"])
@receiver(WEBHOOK_SIGNALS["customer.subscription.updated"])
@receiver(WEBHOOK_SIGNALS["customer.subscription.deleted"])
def on_subscription_changed(sender, event, **kwargs):
    services.subscription_refresh(subscription_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
@receiver(WEBHOOK_SIGNALS["invoice.payment_failed"])
def on_invoice_settled(sender, event, **kwargs):
    services.invoice_refresh(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
def on_invoice_paid_settle_ledger(sender, event, **kwargs):
    ledger.ledger_entries_mark_invoiced(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.payment_failed"])
def on_invoice_payment_failed_dunning(sender, event, **kwargs):
    # Connected after on_invoice_settled, so the account is already past_due when dunning opens its case.
    dunning.dunning_on_invoice_failed(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
def on_invoice_paid_dunning(sender, event, **kwargs):
    dunning.dunning_on_invoice_paid(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["customer.subscription.deleted"])
def on_subscription_deleted_dunning(sender, event, **kwargs):
    dunning.dunning_on_subscription_deleted(subscription_id=_object_id(event))
