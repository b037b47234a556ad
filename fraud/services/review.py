"""Ops decisions on the review queue: approve or block, by staff of the "fraud" group, audited."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.errors import Conflict, NotAllowed
from accounts.models import Account, AccountStatus, User
from accounts.services import account_change_status, account_set_risk_hold, audit_record, user_set_signup_risk_hold
from fraud.models import DecidedBy, Decision, RiskAssessment
from fraud.services.scoring import assessment_record

FRAUD_GROUP = "fraud"


def is_fraud_staff(user) -> bool:
    """Only active staff in the "fraud" group see or touch anything of fraud (superusers included)."""
    if not (user and user.is_authenticated and user.is_active and user.is_staff):
        return False
    cached = getattr(user, "_is_fraud_staff", None)
    if cached is None:
        cached = user.groups.filter(name=FRAUD_GROUP).exists()
        user._is_fraud_staff = cached
    return cached


def _scope(assessment: RiskAssessment) -> Q:
    return Q(account=assessment.account) if assessment.account_id else Q(email=assessment.email)


def _user_of(assessment: RiskAssessment) -> User | None:
    if assessment.user_id:
        return assessment.user
    return User.objects.filter(email__iexact=assessment.email).first() if assessment.email else None


def _decide(*, assessment: RiskAssessment, actor: User, decision: str, note: str) -> RiskAssessment:
    if not is_fraud_staff(actor):
        raise NotAllowed("Only fraud staff can decide reviews.")
    with transaction.atomic():
        locked = (
            RiskAssessment.objects.select_for_update(of=("self",))
            .select_related("account", "user")
            .get(pk=assessment.pk)
        )
        if locked.decided_by == DecidedBy.STAFF:
            raise Conflict("This is already a staff decision.", code="already_decided")
        now = timezone.now()
        # Deciding one review decides the account's (or the signup's) whole open queue.
        RiskAssessment.objects.filter(_scope(locked), resolved_at__isnull=True).update(resolved_at=now)
        decided = assessment_record(
            stage=locked.stage,
            hits=[],
            account=locked.account,
            email=locked.email,
            user=_user_of(locked),
            ip=locked.ip,
            device_id=locked.device_id,
            note=note or f"Staff decision on assessment {locked.pk}.",
            decision=decision,
            decided_by=DecidedBy.STAFF,
            staff=actor,
        )
        audit_record(
            account=locked.account,
            actor=actor,
            action=f"fraud.review_{'approved' if decision == Decision.ALLOW else 'blocked'}",
            target=f"risk_assessment:{locked.pk}",
            before={"decision": locked.decision, "score": locked.score},
            after={"decision": decision, "assessment": decided.pk},
            reason=note,
        )
    return decided


def assessment_approve(*, assessment: RiskAssessment, actor: User, note: str = "") -> RiskAssessment:
    """Release the hold (and a fraud block or freeze) of the account or signup under review."""
    decided = _decide(assessment=assessment, actor=actor, decision=Decision.ALLOW, note=note)
    reason = f"approved by fraud ops (assessment {decided.pk})"
    user = decided.user
    if user is not None and user.signup_risk_hold:
        user_set_signup_risk_hold(user=user, hold=False, actor=actor, reason=reason)
    account = decided.account
    if account is not None:
        account_set_risk_hold(account=account, hold=False, actor=actor, reason=reason)
        status = Account.objects.only("status").get(pk=account.pk).status
        if status in (AccountStatus.BLOCKED, AccountStatus.SUSPENDED):
            # Fraud blocked or froze it; billing's next event recomputes the status from the subscription.
            account_change_status(account=account, to=AccountStatus.ACTIVE, actor=actor, reason=reason)
    return decided


def assessment_block(*, assessment: RiskAssessment, actor: User, note: str = "") -> RiskAssessment:
    """Block the account (or the signup, before it has one). Its browser is then refused at signup."""
    decided = _decide(assessment=assessment, actor=actor, decision=Decision.BLOCK, note=note)
    reason = f"blocked by fraud ops (assessment {decided.pk})"
    if decided.user is not None:
        user_set_signup_risk_hold(user=decided.user, hold=True, actor=actor, reason=reason)
    account = decided.account
    if account is not None:
        account_set_risk_hold(account=account, hold=True, actor=actor, reason=reason)
        if Account.objects.only("status").get(pk=account.pk).status not in (
            AccountStatus.BLOCKED,
            AccountStatus.CLOSED,
        ):
            account_change_status(account=account, to=AccountStatus.BLOCKED, actor=actor, reason=reason)
    return decided
