"""Invitations: a signed, expiring, single-use link by email; creating one takes a seat."""

from __future__ import annotations

from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.errors import Conflict, DomainError, NotAllowed
from accounts.models import Account, Invitation, InvitationStatus, Membership, Role, User
from accounts.services.audit import audit_record
from accounts.services.roles import INVITABLE_ROLES
from accounts.services.seats import (
    account_lock,
    require_additions_allowed,
    require_seat,
    require_standing_for_large_team,
    seat_change_announce,
    team_require_manager,
)
from accounts.services.standing import require_not_on_hold
from outbox.services import email_enqueue

INVITATION_SALT = "tollbooth.invitation"


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"


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
    """To the outbox, in the invitation's transaction: each send (the first, each resend) once."""
    invitation = Invitation.objects.select_related("account", "invited_by").get(pk=invitation_id)
    inviter = invitation.invited_by
    context = {
        "invitation": invitation,
        "inviter": (inviter.full_name or inviter.email) if inviter else "The Tollbooth team",
        "company": invitation.account.name,
        "url": invitation_url(invitation),
        "days": settings.TOLLBOOTH_INVITATION_DAYS,
    }
    email_enqueue(
        key=f"invitation:{invitation.pk}:{invitation.send_count}",
        to=[invitation.email],
        subject=f"{context['inviter']} invited you to join {context['company']} on Tollbooth",
        text=render_to_string("emails/invitation.txt", context),
        html=render_to_string("emails/invitation.html", context),
    )


def invitation_create(*, account: Account, actor: User, email: str, role: str = Role.AGENT) -> Invitation:
    """Invite someone by email with a role; the email goes out after commit."""
    team_require_manager(account=account, actor=actor)
    email = (email or "").strip().lower()
    if role not in INVITABLE_ROLES:
        raise DomainError(
            "Invite as admin or agent; ownership is transferred afterwards.", field="role", code="invalid_role"
        )
    with transaction.atomic():
        account = account_lock(account)
        require_additions_allowed(account)
        require_not_on_hold(account=account, action="inviting people")
        require_standing_for_large_team(account)
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
        require_seat(account=account)
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
        _send_invitation(invitation.pk)
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: User) -> Invitation:
    team_require_manager(account=invitation.account, actor=actor, staff_ok=True)
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
    team_require_manager(account=invitation.account, actor=actor, staff_ok=True)
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
            account_lock(locked.account)
            require_seat(account=locked.account)
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
        _send_invitation(locked.pk)
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
        account = account_lock(locked.account)
        require_additions_allowed(account)
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
        seat_change_announce(account, audit.pk)
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
