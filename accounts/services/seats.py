"""The team's shared rules: seats held, additions allowed, the team manager check; seat changes announced.

Seat checks run with the account row locked (SELECT … FOR UPDATE): two invitations racing for the last seat
are serialised and exactly one gets it.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.entitlements import entitlements_for_account, smallest_plan_with
from accounts.errors import DomainError, NotAllowed
from accounts.models import Account, AccountStatus, Invitation, InvitationStatus, Membership, User
from accounts.services.roles import require_manager
from accounts.services.standing import account_in_good_standing
from accounts.signals import seats_changed

# Accounts in these states keep their team but add nobody (data kept, additions blocked).
NO_ADDITIONS_STATUSES = frozenset({AccountStatus.SUSPENDED, AccountStatus.BLOCKED, AccountStatus.CLOSED})


def membership_of_actor(*, account: Account, actor: User) -> Membership | None:
    return Membership.objects.filter(account=account, user=actor, is_active=True).first()


def team_require_manager(*, account: Account, actor: User, staff_ok: bool = False) -> Membership | None:
    return require_manager(
        account=account, actor=actor, staff_ok=staff_ok, message="Only the account's owners and admins manage the team."
    )


def account_lock(account: Account) -> Account:
    return Account.objects.select_for_update().get(pk=account.pk)


def seats_in_use(*, account: Account) -> int:
    """Active members plus live (pending, unexpired) invitations: both hold a seat."""
    members = Membership.objects.filter(account=account, is_active=True).count()
    pending = Invitation.objects.filter(
        account=account, status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
    ).count()
    return members + pending


def require_seat(*, account: Account, adding: int = 1) -> None:
    """Refuse an addition past the plan's seat limit, naming the plan that would fit. Call under the lock."""
    entitlements = entitlements_for_account(account=account)
    limit = entitlements.seat_limit
    if limit is None:
        if entitlements.plan is None:
            raise DomainError("Choose a plan to add people to your team.", code="no_plan")
        return
    in_use = seats_in_use(account=account)
    if in_use + adding <= limit:
        return
    better = smallest_plan_with(seats=in_use + adding)
    hint = (
        f" The {better.name} plan includes {better.entitlements.get(feature='seats').limit} seats."
        if better
        else " Contact us for a plan with more seats."
    )
    raise DomainError(
        f"Your {entitlements.plan.name} plan includes {limit} seat{'s' if limit != 1 else ''}, and "
        f"{in_use} {'are' if in_use != 1 else 'is'} taken by members and pending invitations.{hint}",
        field="email",
        code="seat_limit",
    )


def require_additions_allowed(account: Account) -> None:
    if account.status in NO_ADDITIONS_STATUSES:
        raise NotAllowed(
            f"A {account.get_status_display().lower()} account can't add people.", code="account_not_allowed"
        )


def require_standing_for_large_team(account: Account) -> None:
    """A new account may invite a few agents at once; past FRAUD_NEW_ACCOUNT_MAX_AGENTS it needs good standing
    (seat farms and spam teams are built in the first days). Call under the lock."""
    if seats_in_use(account=account) + 1 <= settings.FRAUD_NEW_ACCOUNT_MAX_AGENTS:
        return
    if not account_in_good_standing(account=account):
        raise NotAllowed(
            f"A new account can have up to {settings.FRAUD_NEW_ACCOUNT_MAX_AGENTS} people until its first invoice "
            f"is paid or it is {settings.FRAUD_GOOD_STANDING_DAYS} days old.",
            code="good_standing_required",
        )


def seat_change_announce(account: Account, change_id: int) -> None:
    # Billing follows (per-seat quantity) once the change is committed; accounts knows nothing of it.
    transaction.on_commit(partial(seats_changed.send, sender=Account, account_id=account.pk, change_id=change_id))
