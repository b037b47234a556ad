"""What every stage shares: the active rules, adding signals up to a decision, recording it, applying it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.errors import Conflict
from accounts.models import Account, AccountStatus, User
from accounts.services import account_change_status, account_set_risk_hold, user_set_signup_risk_hold
from fraud.models import DecidedBy, Decision, RiskAssessment, RiskSignal, Rule
from fraud.rules import RULE_KINDS
from outbox.events import event_record

logger = logging.getLogger("fraud")

# Not a rule: the cache (velocity counters) could not be read. Worth exactly a review, so a cache outage
# never blocks an honest merchant and never lets a farm through unseen.
CACHE_DOWN = "cache_unavailable"
# Not a rule either: an unexpected error inside a check. Same treatment as the cache.
CHECK_FAILED = "check_failed"


@dataclass
class Hit:
    code: str
    score: int
    details: dict = field(default_factory=dict)


def rules_active(*, stage: str) -> dict[str, dict]:
    """Active rules of a stage as {kind: {"score": …, **parameters}} with defaults filled in."""
    found = {}
    for rule in Rule.objects.filter(stage=stage, active=True):
        spec = RULE_KINDS.get(rule.kind)
        if spec is None:
            continue
        found[rule.kind] = {**spec.default_params, **(rule.parameters or {}), "score": rule.score}
    return found


def decision_for(score: int) -> str:
    if score >= settings.FRAUD_BLOCK_SCORE:
        return Decision.BLOCK
    if score >= settings.FRAUD_REVIEW_SCORE:
        return Decision.REVIEW
    return Decision.ALLOW


def degraded_hit(code: str, error: str) -> Hit:
    logger.warning("fraud check degraded (%s): %s; failing open to review", code, error)
    return Hit(code, settings.FRAUD_REVIEW_SCORE, {"error": error[:200]})


def assessment_record(
    *,
    stage: str,
    hits: list[Hit],
    account: Account | None = None,
    email: str = "",
    user: User | None = None,
    ip: str | None = None,
    device_id: str = "",
    cooloff_until=None,
    note: str = "",
    decision: str | None = None,
    decided_by: str = DecidedBy.SYSTEM,
    staff: User | None = None,
) -> RiskAssessment:
    """Write one assessment and its signals. The decision follows the score unless given (staff)."""
    score = sum(hit.score for hit in hits)
    with transaction.atomic():
        assessment = RiskAssessment.objects.create(
            account=account,
            email=(email or (account.billing_email if account else "")).lower(),
            user=user,
            stage=stage,
            score=score,
            decision=decision or decision_for(score),
            decided_by=decided_by,
            staff=staff,
            note=note,
            ip=ip or None,
            device_id=(device_id or "")[:64],
            cooloff_until=cooloff_until,
            # Only a review waits for someone; an allow or a block is settled when made.
            resolved_at=None if (decision or decision_for(score)) == Decision.REVIEW else timezone.now(),
        )
        RiskSignal.objects.bulk_create(
            RiskSignal(
                assessment=assessment, account=account, stage=stage, code=hit.code, score=hit.score, details=hit.details
            )
            for hit in hits
        )
    return assessment


FREEZE_STATUSES = {AccountStatus.TRIALING, AccountStatus.ACTIVE, AccountStatus.PAST_DUE}


def decision_apply(
    *, assessment: RiskAssessment, actor: User | None = None, freeze_to: str = AccountStatus.BLOCKED
) -> None:
    """Make an assessment's decision bite: review → hold; block → hold and the account blocked (or frozen:
    suspended, for chargebacks). Before the account exists the user's signup flag carries it. Audited by the
    accounts services it calls."""
    if assessment.decision == Decision.ALLOW:
        return
    reason = f"fraud {assessment.stage} {assessment.decision}: risk assessment {assessment.pk}"
    account = assessment.account
    if account is None:
        user = assessment.user or User.objects.filter(email__iexact=assessment.email).first()
        if user is not None:
            user_set_signup_risk_hold(user=user, hold=True, actor=actor, reason=reason)
        return  # the account_provisioned receiver applies it to the account when there is one
    account_set_risk_hold(account=account, hold=True, actor=actor, reason=reason)
    event_record(
        type="fraud.review_opened",
        key=f"fraud.review_opened:{account.public_id}:{assessment.pk}",
        account_id=account.pk,
        data={
            "account": str(account.public_id),
            "stage": assessment.stage,
            "decision": assessment.decision,
            "assessment": assessment.pk,
        },
    )
    if assessment.decision == Decision.BLOCK:
        current = Account.objects.only("status").get(pk=account.pk).status
        if current in FREEZE_STATUSES or (freeze_to == AccountStatus.BLOCKED and current == AccountStatus.SUSPENDED):
            try:
                account_change_status(account=account, to=freeze_to, actor=actor, reason=reason)
            except Conflict:
                logger.warning("account %s could not move to %s from %s", account.pk, freeze_to, current)
