"""Reactions to Stripe's events: re-read the object (never trust the payload), find the account, score.

Chargebacks freeze the account and open a case with its evidence packet; an early fraud warning refunds the
charge and suspends the account; a paid first invoice gives the account good standing.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account, AccountStatus
from accounts.services import account_mark_trusted, audit_record
from billing.stripe_api import account_for_customer, idempotent, retrieve_or_none, stripe_client
from fraud.models import Decision, DisputeCase, DisputeStatus, Stage
from fraud.services.evidence import evidence_packet
from fraud.services.payment import ChargeFacts, payment_record_attempt
from fraud.services.scoring import Hit, assessment_record, decision_apply, rules_active

logger = logging.getLogger("fraud")


def _card(details: dict | None) -> dict:
    return ((details or {}).get("card")) or {}


def charge_assess(*, charge_id: str) -> None:
    """charge.succeeded / charge.failed: the card attempt's checks (card testing, reuse, countries, Radar)."""
    charge = retrieve_or_none(stripe_client().v1.charges, charge_id)
    if charge is None:
        return
    account = account_for_customer(charge.get("customer"))
    if account is None:
        return
    card = _card(charge.get("payment_method_details"))
    facts = ChargeFacts(
        reference=charge["id"],
        succeeded=charge.get("status") == "succeeded",
        fingerprint=card.get("fingerprint") or "",
        card_country=card.get("country") or "",
        funding=card.get("funding") or "",
        risk_level=((charge.get("outcome") or {}).get("risk_level")) or "",
    )
    payment_record_attempt(account=account, facts=facts)


def setup_failure_assess(*, setup_intent_id: str) -> None:
    """setup_intent.setup_failed: a card refused while being saved (Checkout with a trial) is a decline too."""
    intent = retrieve_or_none(stripe_client().v1.setup_intents, setup_intent_id)
    if intent is None:
        return
    account = account_for_customer(intent.get("customer"))
    if account is None:
        return
    error = intent.get("last_setup_error") or {}
    card = ((error.get("payment_method") or {}).get("card")) or {}
    payment_record_attempt(
        account=account,
        facts=ChargeFacts(reference=intent["id"], succeeded=False, fingerprint=card.get("fingerprint") or ""),
    )


def invoice_paid_trust(*, invoice_id: str) -> None:
    """A first invoice actually paid (not a €0 trial invoice) gives the account good standing early."""
    invoice = retrieve_or_none(stripe_client().v1.invoices, invoice_id)
    if invoice is None or not invoice.get("paid", invoice.get("status") == "paid") or not invoice.get("amount_paid"):
        return
    account = account_for_customer(invoice.get("customer"))
    if account is not None:
        account_mark_trusted(account=account, actor=None, reason=f"invoice {invoice['id']} paid")


def dispute_open(*, dispute_id: str) -> DisputeCase | None:
    """charge.dispute.created: re-read the dispute and its charge, then record the chargeback."""
    dispute = retrieve_or_none(stripe_client().v1.disputes, dispute_id)
    if dispute is None:
        return None
    charge = retrieve_or_none(stripe_client().v1.charges, dispute.get("charge")) or {}
    return chargeback_record(account=account_for_customer(charge.get("customer")), dispute=dispute, charge=charge)


def chargeback_record(*, account: Account | None, dispute: dict, charge: dict) -> DisputeCase:
    """Open the case once (unique dispute id), freeze the account, raise the signal, assemble the evidence."""
    try:
        with transaction.atomic():
            case = DisputeCase.objects.create(
                dispute_id=dispute["id"],
                charge_id=dispute.get("charge") or "",
                account=account,
                reason=dispute.get("reason") or "",
                amount_cents=dispute.get("amount") or 0,
                currency=dispute.get("currency") or "",
            )
    except IntegrityError:
        return DisputeCase.objects.get(dispute_id=dispute["id"])  # a redelivery: the case exists
    if account is None:
        logger.warning("dispute %s is on a charge of no Tollbooth account", dispute["id"])
        return case
    rules = rules_active(stage=Stage.CHARGEBACK)
    score = rules.get("dispute", {}).get("score", 100)
    assessment = assessment_record(
        stage=Stage.CHARGEBACK,
        hits=[Hit("dispute", score, {"dispute": dispute["id"], "reason": case.reason, "amount": case.amount_cents})],
        account=account,
        note=f"chargeback {dispute['id']} on {case.charge_id}",
        # Money has been taken back: a chargeback always freezes, whatever the rule's score is tuned to.
        decision=Decision.BLOCK,
    )
    # Frozen means suspended, not blocked: ops decide the account's fate with the case in hand.
    decision_apply(assessment=assessment, freeze_to=AccountStatus.SUSPENDED)
    case.evidence = evidence_packet(account=account, charge=charge, dispute=dispute)
    case.save(update_fields=["evidence"])
    return case


def dispute_submit_evidence(*, case: DisputeCase, actor) -> DisputeCase:
    """Send the case's evidence to Stripe and submit it. The idempotency key names the case, so a double click
    or a retry is one submission."""
    with transaction.atomic():
        locked = DisputeCase.objects.select_for_update().get(pk=case.pk)
        if locked.status != DisputeStatus.OPEN:
            return locked
        fields = {key: value for key, value in (locked.evidence.get("stripe") or {}).items() if value}
        stripe_client().v1.disputes.update(
            locked.dispute_id,
            params={"evidence": fields, "submit": True, "metadata": {"tollbooth_case": str(locked.pk)}},
            options=idempotent(f"dispute:{locked.dispute_id}:evidence"),
        )
        locked.status, locked.submitted_at, locked.submitted_by = DisputeStatus.SUBMITTED, timezone.now(), actor
        locked.save(update_fields=["status", "submitted_at", "submitted_by"])
        audit_record(
            account=locked.account,
            actor=actor,
            action="fraud.dispute_evidence_submitted",
            target=f"dispute:{locked.dispute_id}",
            after={"fields": sorted(fields)},
        )
    return locked


def early_fraud_warning_handle(*, warning_id: str) -> None:
    """radar.early_fraud_warning.created: refund the charge before it becomes a chargeback, suspend the account."""
    warning = retrieve_or_none(stripe_client().v1.radar.early_fraud_warnings, warning_id)
    if warning is None:
        return
    charge = retrieve_or_none(stripe_client().v1.charges, warning.get("charge"))
    if charge is None:
        return
    account = account_for_customer(charge.get("customer"))
    if not charge.get("refunded"):
        stripe_client().v1.refunds.create(
            params={"charge": charge["id"], "reason": "fraudulent"},
            options=idempotent(f"efw-refund:{charge['id']}"),
        )
    if account is None:
        return
    rules = rules_active(stage=Stage.PAYMENT)
    score = rules.get("early_fraud_warning", {}).get("score", 100)
    assessment = assessment_record(
        stage=Stage.PAYMENT,
        hits=[Hit("early_fraud_warning", score, {"warning": warning["id"], "charge": charge["id"]})],
        account=account,
        note=f"early fraud warning {warning['id']}: charge refunded",
        decision=Decision.BLOCK,
    )
    decision_apply(assessment=assessment, freeze_to=AccountStatus.SUSPENDED)
