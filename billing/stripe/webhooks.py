"""dj-stripe webhook receivers: translate the event into an id and call one service.

dj-stripe has already verified the signature and stored the event (unique on its id, so a duplicate
delivery never reaches here twice); receivers run inside that transaction, so an error rolls the event
back and Stripe redelivers it."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.dispatch import receiver
from djstripe.signals import WEBHOOK_SIGNALS

from billing.dunning.cases import (
    dunning_on_invoice_closed,
    dunning_on_invoice_failed,
    dunning_on_invoice_paid,
    dunning_on_subscription_deleted,
)
from billing.ledger.settle import ledger_entries_mark_invoiced
from billing.stripe.fraud_events import dispute_open, early_fraud_warning_handle, invoice_paid_trust
from billing.subscriptions.checkout import checkout_completed
from billing.subscriptions.sync import invoice_refresh, subscription_refresh

logger = logging.getLogger(__name__)


def _object_id(event) -> str | None:
    return (event.data or {}).get("object", {}).get("id")


@receiver(WEBHOOK_SIGNALS["checkout.session.completed"])
def on_checkout_session_completed(sender, event, **kwargs):
    checkout_completed(session_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["customer.subscription.created"])
@receiver(WEBHOOK_SIGNALS["customer.subscription.updated"])
@receiver(WEBHOOK_SIGNALS["customer.subscription.deleted"])
def on_subscription_changed(sender, event, **kwargs):
    subscription_refresh(subscription_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
@receiver(WEBHOOK_SIGNALS["invoice.payment_failed"])
@receiver(WEBHOOK_SIGNALS["invoice.voided"])
@receiver(WEBHOOK_SIGNALS["invoice.marked_uncollectible"])
def on_invoice_settled(sender, event, **kwargs):
    invoice_refresh(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
def on_invoice_paid_settle_ledger(sender, event, **kwargs):
    ledger_entries_mark_invoiced(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.payment_failed"])
def on_invoice_payment_failed_dunning(sender, event, **kwargs):
    # Connected after on_invoice_settled, so the account is already past_due when dunning opens its case.
    dunning_on_invoice_failed(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
def on_invoice_paid_dunning(sender, event, **kwargs):
    dunning_on_invoice_paid(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["invoice.voided"])
@receiver(WEBHOOK_SIGNALS["invoice.marked_uncollectible"])
def on_invoice_closed_dunning(sender, event, **kwargs):
    # The handler re-reads the invoice: an event about an invoice paid since (or never closed) changes nothing.
    dunning_on_invoice_closed(invoice_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["customer.subscription.deleted"])
def on_subscription_deleted_dunning(sender, event, **kwargs):
    dunning_on_subscription_deleted(subscription_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["charge.dispute.created"])
def on_dispute_created(sender, event, **kwargs):
    dispute_open(dispute_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["radar.early_fraud_warning.created"])
def on_early_fraud_warning(sender, event, **kwargs):
    early_fraud_warning_handle(warning_id=_object_id(event))


# charge.failed and charge.succeeded, not payment_intent.payment_failed: that is the same decline seen twice.
@receiver(WEBHOOK_SIGNALS["charge.succeeded"])
@receiver(WEBHOOK_SIGNALS["charge.failed"])
def on_charge(sender, event, **kwargs):
    from billing.tasks import assess_charge

    transaction.on_commit(partial(assess_charge.delay, _object_id(event)))


@receiver(WEBHOOK_SIGNALS["setup_intent.setup_failed"])
def on_setup_failed(sender, event, **kwargs):
    from billing.tasks import assess_setup_failure

    transaction.on_commit(partial(assess_setup_failure.delay, _object_id(event)))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
def on_invoice_paid_trust(sender, event, **kwargs):
    invoice_paid_trust(invoice_id=_object_id(event))
