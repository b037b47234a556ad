"""Reads for accounts. Every caller-facing read is scoped to the caller's own account here."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Account, AccountStatus, ApiKey, Invitation, InvitationStatus, Membership, User


def membership_current(*, user: User, preferred_account_id: int | None = None) -> Membership | None:
    """The membership a logged-in user works in: the session's chosen account if still theirs, else the oldest."""
    if not user or not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("account", "account__plan").filter(user=user, is_active=True)
    if preferred_account_id:
        chosen = memberships.filter(account_id=preferred_account_id).first()
        if chosen:
            return chosen
    return memberships.order_by("created_at", "pk").first()


def members_of(*, account: Account) -> QuerySet[Membership]:
    return Membership.objects.filter(account=account).select_related("user").order_by("-is_active", "created_at")


def invitations_pending(*, account: Account) -> QuerySet[Invitation]:
    return Invitation.objects.filter(account=account, status=InvitationStatus.PENDING).select_related("invited_by")


def api_keys_for_account(*, account: Account) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(account=account).order_by("-created_at")


def trial_days_left(*, account: Account) -> int | None:
    """Whole days until the trial ends (0 on its last day), or None outside a trial."""
    if account.status != AccountStatus.TRIALING or account.trial_ends_at is None:
        return None
    remaining = account.trial_ends_at - timezone.now()
    return max(0, remaining.days + (1 if remaining.seconds else 0))
