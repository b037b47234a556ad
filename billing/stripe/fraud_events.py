"""Fraud's Stripe events: re-read the charge, setup intent, invoice, dispute or warning, find the account,
and hand fraud the facts (`fraud.services`); fraud never imports billing."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import Account
from billing.stripe.client import idempotent, retrieve_or_none, stripe_client
from billing.stripe.objects import stripe_object_with_account
from billing.subscriptions.selectors import invoices_for_account
from billing.usage.selectors import usage_by_metric
from fraud import services as fraud

EVIDENCE_USAGE_WINDOW = timedelta(days=90)


def _card(details: dict | None) -> dict:
    return ((details or {}).get("card")) or {}


def charge_assess(*, charge_id: str) -> None:
    """charge.succeeded / charge.failed: the card attempt's checks (card testing, reuse, countries, Radar)."""
    charge, account = stripe_object_with_account(stripe_client().v1.charges, charge_id)
    if account is None:
        return
    card = _card(charge.get("payment_method_details"))
    facts = fraud.ChargeFacts(
        reference=charge["id"],
        succeeded=charge.get("status") == "succeeded",
        fingerprint=card.get("fingerprint") or "",
        card_country=card.get("country") or "",
        funding=card.get("funding") or "",
        risk_level=((charge.get("outcome") or {}).get("risk_level")) or "",
    )
    fraud.payment_record_attempt(account=account, facts=facts)


def setup_failure_assess(*, setup_intent_id: str) -> None:
    """setup_intent.setup_failed: a card refused while being saved (Checkout with a trial) is a decline too."""
    intent, account = stripe_object_with_account(stripe_client().v1.setup_intents, setup_intent_id)
    if account is None:
        return
    error = intent.get("last_setup_error") or {}
    card = ((error.get("payment_method") or {}).get("card")) or {}
    fraud.payment_record_attempt(
        account=account,
        facts=fraud.ChargeFacts(reference=intent["id"], succeeded=False, fingerprint=card.get("fingerprint") or ""),
    )


def invoice_paid_trust(*, invoice_id: str) -> None:
    """invoice.paid: a first invoice actually paid (not a €0 trial invoice) gives the account good standing."""
    invoice, account = stripe_object_with_account(stripe_client().v1.invoices, invoice_id)
    if account is not None and invoice.get("paid", invoice.get("status") == "paid"):
        fraud.invoice_paid_trust(account=account, invoice_id=invoice["id"], amount_paid=invoice.get("amount_paid") or 0)


def _invoice_facts(account: Account) -> list[dict]:
    return [
        {
            "id": invoice.id,
            "number": invoice.stripe_data.get("number"),
            "status": invoice.stripe_data.get("status"),
            "amount_paid": invoice.stripe_data.get("amount_paid"),
            "currency": invoice.stripe_data.get("currency"),
            "created": invoice.stripe_data.get("created"),
        }
        for invoice in invoices_for_account(account=account)
    ]


def dispute_open(*, dispute_id: str):
    """charge.dispute.created: re-read the dispute and its charge, then hand the chargeback to fraud."""
    dispute = retrieve_or_none(stripe_client().v1.disputes, dispute_id)
    if dispute is None:
        return None
    charge, account = stripe_object_with_account(stripe_client().v1.charges, dispute.get("charge"))
    charge = charge or {}
    return fraud.chargeback_record(
        account=account,
        dispute=dispute,
        charge=charge,
        invoices=_invoice_facts(account) if account else [],
        usage_last_90_days=(
            usage_by_metric(account=account, since=timezone.now() - EVIDENCE_USAGE_WINDOW) if account else {}
        ),
    )


def dispute_evidence_send(dispute_id: str, fields: dict, metadata: dict, idempotency_key: str) -> None:
    """Submit a dispute's evidence to Stripe (registered with fraud at start-up: fraud's admin submits cases)."""
    stripe_client().v1.disputes.update(
        dispute_id,
        params={"evidence": fields, "submit": True, "metadata": metadata},
        options=idempotent(idempotency_key),
    )


def early_fraud_warning_handle(*, warning_id: str) -> None:
    """radar.early_fraud_warning.created: refund the charge before it becomes a chargeback; fraud suspends."""
    warning = retrieve_or_none(stripe_client().v1.radar.early_fraud_warnings, warning_id)
    if warning is None:
        return
    charge, account = stripe_object_with_account(stripe_client().v1.charges, warning.get("charge"))
    if charge is None:
        return
    if not charge.get("refunded"):
        stripe_client().v1.refunds.create(
            params={"charge": charge["id"], "reason": "fraudulent"},
            options=idempotent(f"efw-refund:{charge['id']}"),
        )
    if account is None:
        return
    fraud.early_fraud_warning_record(account=account, warning_id=warning["id"], charge_id=charge["id"])
