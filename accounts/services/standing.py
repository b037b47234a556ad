"""Fraud standing as accounts keeps it: the hold, trust and good standing that costly features need.

Fraud decides; accounts only keeps the outcome (two fields) and enforces it, so nothing here imports fraud.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.errors import NotAllowed
from accounts.models import Account, AccountStatus, User
from accounts.services.audit import audit_record, plain_value

UNDER_REVIEW_MESSAGE = (
    "Your account is being reviewed, which usually takes less than one business day. "
    "You can use the product meanwhile; {action} opens once the review is done."
)

NO_STANDING_STATUSES = frozenset({AccountStatus.SUSPENDED, AccountStatus.BLOCKED, AccountStatus.CLOSED})


def account_set_risk_hold(*, account: Account, hold: bool, actor: User | None, reason: str) -> Account:
    """Put an account on fraud hold or release it: row locked, audited. Same value is a no-op."""
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        if locked.risk_hold == hold:
            return locked
        locked.risk_hold = hold
        locked.save(update_fields=["risk_hold"])
        audit_record(
            account=locked,
            actor=actor,
            action="account.risk_hold_changed",
            before={"risk_hold": not hold},
            after={"risk_hold": hold},
            reason=reason,
        )
    return locked


def user_set_signup_risk_hold(*, user: User, hold: bool, actor: User | None, reason: str) -> User:
    """Flag (or clear) a signup under review whose user has no account yet. Audited."""
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.signup_risk_hold == hold:
            return locked
        locked.signup_risk_hold = hold
        locked.save(update_fields=["signup_risk_hold"])
        audit_record(
            account=None,
            actor=actor,
            action="user.signup_risk_hold_changed",
            target=f"user:{locked.pk}",
            before={"signup_risk_hold": not hold},
            after={"signup_risk_hold": hold},
            reason=reason,
        )
    return locked


def account_mark_trusted(*, account: Account, actor: User | None, reason: str) -> Account:
    """Record that the account earned good standing (first invoice paid, or ops approval). Once; audited."""
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        if locked.trusted_at is not None:
            return locked
        locked.trusted_at = timezone.now()
        locked.save(update_fields=["trusted_at"])
        audit_record(
            account=locked,
            actor=actor,
            action="account.trusted",
            after={"trusted_at": plain_value(locked.trusted_at)},
            reason=reason,
        )
    return locked


def require_not_on_hold(*, account: Account, action: str) -> None:
    """Refuse an action while fraud review is pending, without saying why the account is reviewed."""
    if account.risk_hold:
        raise NotAllowed(UNDER_REVIEW_MESSAGE.format(action=action), code="account_under_review")


def account_in_good_standing(*, account: Account) -> bool:
    """Costly features need this: no fraud hold, not suspended/blocked/closed, and either trusted (first
    invoice paid, or approved) or older than FRAUD_GOOD_STANDING_DAYS."""
    if account.risk_hold or account.status in NO_STANDING_STATUSES:
        return False
    if account.trusted_at is not None:
        return True
    return account.created_at <= timezone.now() - timedelta(days=settings.FRAUD_GOOD_STANDING_DAYS)


def require_good_standing(*, account: Account, action: str) -> None:
    require_not_on_hold(account=account, action=action)
    if not account_in_good_standing(account=account):
        raise NotAllowed(
            f"{action[:1].upper()}{action[1:]} opens once your first invoice is paid or your account is "
            f"{settings.FRAUD_GOOD_STANDING_DAYS} days old.",
            code="good_standing_required",
        )
