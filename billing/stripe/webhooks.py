"""What each Stripe event does: translate the event into an id and call one service.

The intake has verified the signature and stored the event once (billing.stripe.intake); a worker runs these
handlers in registration order, each in its own transaction with its own outcome, so one that fails is retried
alone (billing.stripe.events). Every service re-reads the object the event names, once for all of them."""

from __future__ import annotations

import logging

from billing.dunning.cases import (
    dunning_on_invoice_closed,
    dunning_on_invoice_failed,
    dunning_on_invoice_paid,
    dunning_on_subscription_deleted,
)
from billing.ledger.settle import ledger_entries_mark_invoiced
from billing.stripe.fraud_events import (
    charge_assess,
    dispute_open,
    early_fraud_warning_handle,
    invoice_paid_trust,
    setup_failure_assess,
)
from billing.stripe.handlers import handles
from billing.subscriptions.checkout import checkout_completed
from billing.subscriptions.sync import customer_refresh, invoice_refresh, subscription_refresh

logger = logging.getLogger(__name__)


def _object_id(event) -> str | None:
    return event.object_id or None


@handles("checkout.session.completed")
def on_checkout_session_completed(event):
    checkout_completed(session_id=_object_id(event))


@handles("customer.created", "customer.updated")
def on_customer_changed(event):
    customer_refresh(customer_id=_object_id(event))


@handles(
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
def on_subscription_changed(event):
    subscription_refresh(subscription_id=_object_id(event))


@handles(
    "invoice.created",
    "invoice.finalized",
    "invoice.updated",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
)
def on_invoice_changed(event):
    # Every invoice event refreshes the mirror (the billing page and reconciliation read it); the settling
    # ones first, so the handlers after this one see the account in line with Stripe.
    invoice_refresh(invoice_id=_object_id(event))


@handles("invoice.paid")
def on_invoice_paid_settle_ledger(event):
    ledger_entries_mark_invoiced(invoice_id=_object_id(event))


@handles("invoice.payment_failed")
def on_invoice_payment_failed_dunning(event):
    # Registered after on_invoice_changed, so the account is already past_due when dunning opens its case.
    dunning_on_invoice_failed(invoice_id=_object_id(event))


@handles("invoice.paid")
def on_invoice_paid_dunning(event):
    dunning_on_invoice_paid(invoice_id=_object_id(event))


@handles("invoice.voided", "invoice.marked_uncollectible")
def on_invoice_closed_dunning(event):
    # The handler re-reads the invoice: an event about an invoice paid since (or never closed) changes nothing.
    dunning_on_invoice_closed(invoice_id=_object_id(event))


@handles("customer.subscription.deleted")
def on_subscription_deleted_dunning(event):
    dunning_on_subscription_deleted(subscription_id=_object_id(event))


@handles("charge.dispute.created")
def on_dispute_created(event):
    dispute_open(dispute_id=_object_id(event))


@handles("radar.early_fraud_warning.created")
def on_early_fraud_warning(event):
    early_fraud_warning_handle(warning_id=_object_id(event))


# charge.failed and charge.succeeded, not payment_intent.payment_failed: that is the same decline seen twice.
# Assessed here, in the event's worker and transaction (its outcome row is the retry), not in a task of its own.
@handles("charge.succeeded", "charge.failed")
def on_charge(event):
    charge_assess(charge_id=_object_id(event))


@handles("setup_intent.setup_failed")
def on_setup_failed(event):
    setup_failure_assess(setup_intent_id=_object_id(event))


@handles("invoice.paid")
def on_invoice_paid_trust(event):
    invoice_paid_trust(invoice_id=_object_id(event))
