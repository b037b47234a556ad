"""Fraud's reactions to Stripe's events, on facts its caller read: billing's Stripe seam re-reads each object
(never trusting the payload), finds the account and calls these; fraud never imports billing.

Chargebacks freeze the account and open a case with its evidence packet; an early fraud warning (its charge
refunded by the caller) suspends the account; a paid first invoice gives the account good standing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account, AccountStatus
from accounts.services import account_mark_trusted, audit_record
from fraud.models import Decision, DisputeCase, DisputeStatus, Stage
from fraud.services.evidence import evidence_packet
from fraud.services.scoring import Hit, assessment_record, decision_apply, rules_active

logger = logging.getLogger("fraud")

# How evidence reaches the payment provider: `send(dispute_id, fields, metadata, idempotency_key)`. Billing's
# Stripe seam registers it at start-up (billing.apps), so fraud depends on the seam only through this shape.
EvidenceSender = Callable[[str, dict, dict, str], None]
_evidence_sender: list[EvidenceSender] = []


def evidence_sender_register(send: EvidenceSender) -> None:
    """Name the function that submits dispute evidence to the provider (one; a second call replaces it)."""
    _evidence_sender[:] = [send]


def invoice_paid_trust(*, account: Account, invoice_id: str, amount_paid: int) -> None:
    """A first invoice actually paid (not a €0 trial invoice) gives the account good standing early."""
    if amount_paid:
        account_mark_trusted(account=account, actor=None, reason=f"invoice {invoice_id} paid")


def chargeback_record(
    *,
    account: Account | None,
    dispute: dict,
    charge: dict,
    invoices: list[dict] | None = None,
    usage_last_90_days: dict[str, int] | None = None,
) -> DisputeCase:
    """Open the case once (unique dispute id), freeze the account, raise the signal, assemble the evidence.

    `dispute` and `charge` are the re-read Stripe objects; `invoices` and `usage_last_90_days` the facts of
    the evidence packet (see `evidence_packet`)."""
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
    case.evidence = evidence_packet(
        account=account,
        charge=charge,
        dispute=dispute,
        invoices=list(invoices or []),
        usage_last_90_days=usage_last_90_days or {},
    )
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
        if not _evidence_sender:
            raise RuntimeError("No evidence sender registered (billing's Stripe seam registers it at start-up).")
        _evidence_sender[0](
            locked.dispute_id, fields, {"tollbooth_case": str(locked.pk)}, f"dispute:{locked.dispute_id}:evidence"
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


def early_fraud_warning_record(*, account: Account, warning_id: str, charge_id: str) -> None:
    """radar.early_fraud_warning.created, its charge already refunded by the caller: suspend the account."""
    rules = rules_active(stage=Stage.PAYMENT)
    score = rules.get("early_fraud_warning", {}).get("score", 100)
    assessment = assessment_record(
        stage=Stage.PAYMENT,
        hits=[Hit("early_fraud_warning", score, {"warning": warning_id, "charge": charge_id})],
        account=account,
        note=f"early fraud warning {warning_id}: charge refunded",
        decision=Decision.BLOCK,
    )
    decision_apply(assessment=assessment, freeze_to=AccountStatus.SUSPENDED)
