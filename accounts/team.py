"""Services for an account's team: invitations, roles, deactivation, ownership, and the seat limit.

Every action checks the actor's role here, so pages, the API and the admin enforce the same rules. Seat
checks run with the account row locked (SELECT … FOR UPDATE): two invitations racing for the last seat
are serialised and exactly one gets it.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.entitlements import entitlements_for_account, smallest_plan_with
from accounts.errors import Conflict, DomainError, NotAllowed
from accounts.models import Account, AccountStatus, Invitation, InvitationStatus, Membership, Role, User
from accounts.services import MANAGER_ROLES, account_in_good_standing, audit_record, require_not_on_hold
from accounts.signals import seats_changed

INVITATION_SALT = "tollbooth.invitation"
INVITABLE_ROLES = (Role.ADMIN, Role.AGENT)  # ownership is transferred, never invited
# Accounts in these states keep their team but add nobody (data kept, additions blocked).
NO_ADDITIONS_STATUSES = frozenset({AccountStatus.SUSPENDED, AccountStatus.BLOCKED, AccountStatus.CLOSED})


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"


def _actor_membership(*, account: Account, actor: User) -> Membership | None:
    return Membership.objects.filter(account=account, user=actor, is_active=True).first()


def _require_manager(*, account: Account, actor: User, staff_ok: bool = False) -> Membership | None:
    if staff_ok and actor.is_staff:
        return None
    membership = _actor_membership(account=account, actor=actor)
    if membership is None or membership.role not in MANAGER_ROLES:
        raise NotAllowed("Only the account's owners and admins manage the team.")
    return membership


def _lock(account: Account) -> Account:
    return Account.objects.select_for_update().get(pk=account.pk)


def seats_in_use(*, account: Account) -> int:
    """Active members plus live (pending, unexpired) invitations: both hold a seat."""
    members = Membership.objects.filter(account=account, is_active=True).count()
    pending = Invitation.objects.filter(
        account=account, status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
    ).count()
    return members + pending


def _require_seat(*, account: Account, adding: int = 1) -> None:
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


def _require_additions_allowed(account: Account) -> None:
    if account.status in NO_ADDITIONS_STATUSES:
        raise NotAllowed(
            f"A {account.get_status_display().lower()} account can't add people.", code="account_not_allowed"
        )


def _require_standing_for_large_team(account: Account) -> None:
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


def _announce_seat_change(account: Account, change_id: int) -> None:
    # Billing follows (per-seat quantity) once the change is committed; accounts knows nothing of it.
    transaction.on_commit(partial(seats_changed.send, sender=Account, account_id=account.pk, change_id=change_id))


# --- invitations -----------------------------------------------------------------------------------------


def invitation_token(invitation: Invitation) -> str:
    """The signed link token. The signature stops forgery; the row's status and expiry make it single use."""
    return signing.dumps({"i": invitation.pk, "c": int(invitation.created_at.timestamp())}, salt=INVITATION_SALT)


def invitation_url(invitation: Invitation) -> str:
    return f"{settings.SITE_URL}/invitations/{invitation_token(invitation)}/"


def invitation_from_token(token: str) -> Invitation:
    """The pending, unexpired invitation a link names; a clear error for any other link."""
    try:
        payload = signing.loads(token, salt=INVITATION_SALT)
        invitation = Invitation.objects.select_related("account", "invited_by").get(pk=payload["i"])
    except (signing.BadSignature, KeyError, TypeError, Invitation.DoesNotExist):
        raise DomainError("This invitation link is not valid.", code="invalid_invitation") from None
    if int(invitation.created_at.timestamp()) != payload.get("c"):
        raise DomainError("This invitation link is not valid.", code="invalid_invitation")
    if invitation.status == InvitationStatus.ACCEPTED:
        raise Conflict("This invitation has already been used.", code="invitation_used")
    if invitation.status == InvitationStatus.REVOKED:
        raise Conflict("This invitation was withdrawn.", code="invitation_revoked")
    if invitation.is_expired:
        raise Conflict("This invitation has expired; ask for a new one.", code="invitation_expired")
    return invitation


def _send_invitation(invitation_id: int) -> None:
    invitation = Invitation.objects.select_related("account", "invited_by").get(pk=invitation_id)
    inviter = invitation.invited_by
    context = {
        "invitation": invitation,
        "inviter": (inviter.full_name or inviter.email) if inviter else "The Tollbooth team",
        "company": invitation.account.name,
        "url": invitation_url(invitation),
        "days": settings.TOLLBOOTH_INVITATION_DAYS,
    }
    send_mail(
        subject=f"{context['inviter']} invited you to join {context['company']} on Tollbooth",
        message=render_to_string("emails/invitation.txt", context),
        html_message=render_to_string("emails/invitation.html", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


def invitation_create(*, account: Account, actor: User, email: str, role: str = Role.AGENT) -> Invitation:
    """Invite someone by email with a role; the email goes out after commit."""
    _require_manager(account=account, actor=actor)
    email = (email or "").strip().lower()
    if role not in INVITABLE_ROLES:
        raise DomainError(
            "Invite as admin or agent; ownership is transferred afterwards.", field="role", code="invalid_role"
        )
    with transaction.atomic():
        account = _lock(account)
        _require_additions_allowed(account)
        require_not_on_hold(account=account, action="inviting people")
        _require_standing_for_large_team(account)
        member = Membership.objects.filter(account=account, user__email__iexact=email).first()
        if member is not None:
            message = (
                "This person is already a member of the account."
                if member.is_active
                else "This person is a deactivated member; reactivate them instead."
            )
            raise DomainError(message, field="email", code="already_member")
        if Invitation.objects.filter(
            account=account, email__iexact=email, status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
        ).exists():
            raise DomainError(
                "This address already has a pending invitation; resend it instead.",
                field="email",
                code="already_invited",
            )
        # An expired pending invitation holds no seat and no longer blocks a new one.
        Invitation.objects.filter(account=account, email__iexact=email, status=InvitationStatus.PENDING).update(
            status=InvitationStatus.REVOKED
        )
        _require_seat(account=account)
        now = timezone.now()
        try:
            with transaction.atomic():
                invitation = Invitation.objects.create(
                    account=account,
                    email=email,
                    role=role,
                    invited_by=actor,
                    created_at=now,
                    last_sent_at=now,
                    expires_at=now + timedelta(days=settings.TOLLBOOTH_INVITATION_DAYS),
                )
        except IntegrityError:
            raise DomainError(
                "This address already has a pending invitation.", field="email", code="already_invited"
            ) from None
        audit_record(
            account=account,
            actor=actor,
            action="invitation.created",
            target=f"invitation:{invitation.pk}",
            after={"email": email, "role": role},
        )
        transaction.on_commit(partial(_send_invitation, invitation.pk))
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: User) -> Invitation:
    _require_manager(account=invitation.account, actor=actor, staff_ok=True)
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.status != InvitationStatus.PENDING:
            raise Conflict(f"This invitation is already {locked.get_status_display().lower()}.", code="not_pending")
        locked.status = InvitationStatus.REVOKED
        locked.save(update_fields=["status"])
        audit_record(
            account=locked.account,
            actor=actor,
            action="invitation.revoked",
            target=f"invitation:{locked.pk}",
            before={"status": "pending"},
            after={"status": "revoked"},
        )
    return locked


def invitation_resend(*, invitation: Invitation, actor: User) -> Invitation:
    """Send the invitation again with a fresh expiry; rate-limited per invitation."""
    _require_manager(account=invitation.account, actor=actor, staff_ok=True)
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.status != InvitationStatus.PENDING:
            raise Conflict(f"This invitation is {locked.get_status_display().lower()}.", code="not_pending")
        now = timezone.now()
        wait = timedelta(minutes=settings.TOLLBOOTH_INVITATION_RESEND_MINUTES) - (now - locked.last_sent_at)
        if wait > timedelta(0):
            minutes = max(1, int(wait.total_seconds() // 60) + (1 if wait.total_seconds() % 60 else 0))
            raise RateLimited(f"This invitation was just sent; you can resend it in {minutes} minute(s).")
        if locked.send_count >= settings.TOLLBOOTH_INVITATION_MAX_SENDS:
            raise RateLimited("This invitation has been sent too many times; revoke it and invite again.")
        if locked.is_expired:
            # Renewing an expired invitation takes a seat again.
            _lock(locked.account)
            _require_seat(account=locked.account)
        locked.last_sent_at = now
        locked.send_count += 1
        locked.expires_at = now + timedelta(days=settings.TOLLBOOTH_INVITATION_DAYS)
        locked.save(update_fields=["last_sent_at", "send_count", "expires_at"])
        audit_record(
            account=locked.account,
            actor=actor,
            action="invitation.resent",
            target=f"invitation:{locked.pk}",
            after={"send_count": locked.send_count},
        )
        transaction.on_commit(partial(_send_invitation, locked.pk))
    return locked


def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the account as the invited role. The invitation is locked and used once."""
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().select_related("account").get(pk=invitation.pk)
        if locked.status != InvitationStatus.PENDING or locked.is_expired:
            raise Conflict("This invitation can no longer be used.", code="invitation_used")
        if user.email.lower() != locked.email.lower():
            raise NotAllowed(
                f"This invitation is for {locked.email}; sign in with that address to accept it.", code="wrong_user"
            )
        account = _lock(locked.account)
        _require_additions_allowed(account)
        membership, created = Membership.objects.get_or_create(
            account=account, user=user, defaults={"role": locked.role, "is_active": True}
        )
        if not created:
            if membership.is_active:
                raise Conflict("You are already a member of this account.", code="already_member")
            membership.is_active, membership.role = True, locked.role
            membership.save(update_fields=["is_active", "role"])
        # The invitation's seat becomes the member's: no seat check (the count does not change).
        locked.status, locked.accepted_by, locked.accepted_at = InvitationStatus.ACCEPTED, user, timezone.now()
        locked.save(update_fields=["status", "accepted_by", "accepted_at"])
        audit = audit_record(
            account=account,
            actor=user,
            action="invitation.accepted",
            target=f"invitation:{locked.pk}",
            after={"role": locked.role, "email": user.email},
        )
        _announce_seat_change(account, audit.pk)
    return membership


def invitation_accept_as_new_user(*, invitation: Invitation, password: str, full_name: str = "") -> User:
    """Sign the invitee up (the link proves they own the address) and accept, in one transaction."""
    with transaction.atomic():
        if User.objects.annotate(lower=Lower("email")).filter(lower=invitation.email.lower()).exists():
            raise Conflict("An account with this address exists; sign in to accept.", code="user_exists")
        user = User.objects.create_user(email=invitation.email, password=password, full_name=full_name.strip())
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        invitation_accept(invitation=invitation, user=user)
    return user


# --- members ---------------------------------------------------------------------------------------------


def _active_owners(account: Account) -> int:
    return Membership.objects.filter(account=account, role=Role.OWNER, is_active=True).count()


def membership_change_role(*, membership: Membership, actor: User, role: str) -> Membership:
    """Make a member an admin or an agent. Owners change owners; admins manage admins and agents."""
    actor_membership = _require_manager(account=membership.account, actor=actor)
    if role not in INVITABLE_ROLES:
        raise DomainError(
            "Choose admin or agent; use “transfer ownership” to make someone owner.", field="role", code="invalid_role"
        )
    with transaction.atomic():
        _lock(membership.account)
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
    actor_membership = _require_manager(account=membership.account, actor=actor)
    with transaction.atomic():
        _lock(membership.account)
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
        _announce_seat_change(locked.account, audit.pk)
    return locked


def membership_reactivate(*, membership: Membership, actor: User) -> Membership:
    _require_manager(account=membership.account, actor=actor)
    with transaction.atomic():
        account = _lock(membership.account)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.is_active:
            return locked
        _require_additions_allowed(account)
        _require_seat(account=account)
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
        _announce_seat_change(account, audit.pk)
    return locked


def ownership_transfer(*, account: Account, actor: User, to: Membership) -> Membership:
    """Hand the account to another active member; the previous owner stays on as admin."""
    actor_membership = _actor_membership(account=account, actor=actor)
    if actor_membership is None or actor_membership.role != Role.OWNER:
        raise NotAllowed("Only the owner can transfer ownership.")
    if to.account_id != account.pk or not to.is_active:
        raise DomainError("Choose an active member of this account.", field="membership", code="invalid_member")
    if to.pk == actor_membership.pk:
        raise DomainError("You already own this account.", field="membership", code="invalid_member")
    with transaction.atomic():
        _lock(account)
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
