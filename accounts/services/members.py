"""Members: roles, deactivation and reactivation, ownership transfer. Never leaves an account without an owner."""

from __future__ import annotations

from django.db import transaction

from accounts.errors import Conflict, DomainError, NotAllowed
from accounts.models import Account, Membership, Role, User
from accounts.services.audit import audit_record
from accounts.services.roles import INVITABLE_ROLES
from accounts.services.seats import (
    account_lock,
    membership_of_actor,
    require_additions_allowed,
    require_seat,
    seat_change_announce,
    team_require_manager,
)


def _active_owners(account: Account) -> int:
    return Membership.objects.filter(account=account, role=Role.OWNER, is_active=True).count()


def membership_change_role(*, membership: Membership, actor: User, role: str) -> Membership:
    """Make a member an admin or an agent. Owners change owners; admins manage admins and agents."""
    actor_membership = team_require_manager(account=membership.account, actor=actor)
    if role not in INVITABLE_ROLES:
        raise DomainError(
            "Choose admin or agent; use “transfer ownership” to make someone owner.", field="role", code="invalid_role"
        )
    with transaction.atomic():
        account_lock(membership.account)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER:
            if actor_membership.role != Role.OWNER:
                raise NotAllowed("Only an owner can change an owner's role.")
            if _active_owners(locked.account) <= 1:
                raise Conflict("An account needs an owner: transfer ownership first.", code="last_owner")
        if locked.role == role:
            return locked
        before = locked.role
        locked.role = role
        locked.save(update_fields=["role"])
        audit_record(
            account=locked.account,
            actor=actor,
            action="membership.role_changed",
            target=f"membership:{locked.pk}",
            before={"role": before},
            after={"role": role},
        )
    return locked


def membership_deactivate(*, membership: Membership, actor: User) -> Membership:
    """Remove a member's access (their data stays). Never the last owner."""
    actor_membership = team_require_manager(account=membership.account, actor=actor)
    with transaction.atomic():
        account_lock(membership.account)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if not locked.is_active:
            return locked
        if locked.role == Role.OWNER:
            if actor_membership.role != Role.OWNER:
                raise NotAllowed("Only an owner can remove an owner.")
            if _active_owners(locked.account) <= 1:
                raise Conflict("An account needs an owner: transfer ownership before leaving.", code="last_owner")
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        audit = audit_record(
            account=locked.account,
            actor=actor,
            action="membership.deactivated",
            target=f"membership:{locked.pk}",
            before={"active": True},
            after={"active": False},
        )
        seat_change_announce(locked.account, audit.pk)
    return locked


def membership_reactivate(*, membership: Membership, actor: User) -> Membership:
    team_require_manager(account=membership.account, actor=actor)
    with transaction.atomic():
        account = account_lock(membership.account)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.is_active:
            return locked
        require_additions_allowed(account)
        require_seat(account=account)
        locked.is_active = True
        locked.save(update_fields=["is_active"])
        audit = audit_record(
            account=account,
            actor=actor,
            action="membership.reactivated",
            target=f"membership:{locked.pk}",
            before={"active": False},
            after={"active": True},
        )
        seat_change_announce(account, audit.pk)
    return locked


def ownership_transfer(*, account: Account, actor: User, to: Membership) -> Membership:
    """Hand the account to another active member; the previous owner stays on as admin."""
    actor_membership = membership_of_actor(account=account, actor=actor)
    if actor_membership is None or actor_membership.role != Role.OWNER:
        raise NotAllowed("Only the owner can transfer ownership.")
    if to.account_id != account.pk or not to.is_active:
        raise DomainError("Choose an active member of this account.", field="membership", code="invalid_member")
    if to.pk == actor_membership.pk:
        raise DomainError("You already own this account.", field="membership", code="invalid_member")
    with transaction.atomic():
        account_lock(account)
        Membership.objects.filter(pk=to.pk).update(role=Role.OWNER)
        Membership.objects.filter(pk=actor_membership.pk).update(role=Role.ADMIN)
        audit_record(
            account=account,
            actor=actor,
            action="ownership.transferred",
            target=f"membership:{to.pk}",
            before={"owner": actor.email},
            after={"owner": to.user.email},
        )
    to.refresh_from_db()
    return to
