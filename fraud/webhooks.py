"""dj-stripe webhook handlers for fraud: translate the event into an id and call one service or task.

Disputes and early fraud warnings are handled at once (money is leaving); charge outcomes go to Celery after
commit. Handlers run inside dj-stripe's event transaction: an error rolls it back and Stripe redelivers.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.dispatch import receiver
from djstripe.signals import WEBHOOK_SIGNALS

from fraud.services import stripe_events


def _object_id(event) -> str | None:
    return (event.data or {}).get("object", {}).get("id")


@receiver(WEBHOOK_SIGNALS["charge.dispute.created"])
def on_dispute_created(sender, event, **kwargs):
    stripe_events.dispute_open(dispute_id=_object_id(event))


@receiver(WEBHOOK_SIGNALS["radar.early_fraud_warning.created"])
def on_early_fraud_warning(sender, event, **kwargs):
    stripe_events.early_fraud_warning_handle(warning_id=_object_id(event))


# charge.failed and charge.succeeded, not payment_intent.payment_failed: that is the same decline seen twice.
@receiver(WEBHOOK_SIGNALS["charge.succeeded"])
@receiver(WEBHOOK_SIGNALS["charge.failed"])
def on_charge(sender, event, **kwargs):
    from fraud.tasks import assess_charge

    transaction.on_commit(partial(assess_charge.delay, _object_id(event)))


@receiver(WEBHOOK_SIGNALS["setup_intent.setup_failed"])
def on_setup_failed(sender, event, **kwargs):
    from fraud.tasks import assess_setup_failure

    transaction.on_commit(partial(assess_setup_failure.delay, _object_id(event)))


@receiver(WEBHOOK_SIGNALS["invoice.paid"])
def on_invoice_paid(sender, event, **kwargs):
    stripe_events.invoice_paid_trust(invoice_id=_object_id(event))
