"""Who may manage an account: the one manager-role rule, for accounts and billing alike."""

from __future__ import annotations

from accounts.errors import NotAllowed
from accounts.models import Account, Membership, Role, User

# Roles that manage the account itself (its settings, billing, team and keys).
MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})
INVITABLE_ROLES = (Role.ADMIN, Role.AGENT)  # ownership is transferred, never invited


def membership_is_manager(membership: Membership | None) -> bool:
    """True when the membership may manage its account (settings, billing, team, keys)."""
    return membership is not None and membership.role in MANAGER_ROLES


def require_manager(
    *,
    account: Account,
    actor: User,
    staff_ok: bool = False,
    message: str = "Only the account's owners and admins can do this.",
) -> Membership | None:
    """Refuse unless the actor is an active owner or admin of the account (or staff, where staff_ok).

    Returns the actor's membership (None for staff acting without one).
    """
    if staff_ok and actor.is_staff:
        return None
    membership = Membership.objects.filter(account=account, user=actor, is_active=True).first()
    if not membership_is_manager(membership):
        raise NotAllowed(message)
    return membership
