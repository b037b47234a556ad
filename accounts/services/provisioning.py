"""Provisioning a merchant account and editing its own settings; the welcome email."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from accounts.errors import Conflict, DomainError, NotAllowed
from accounts.models import Account, AccountStatus, Membership, Role, User
from accounts.services.audit import audit_record, plain_value
from accounts.services.roles import require_manager
from accounts.signals import account_provisioned

logger = logging.getLogger(__name__)

ACCOUNT_NAME_MAX = 200


def _clean_account_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise DomainError("Enter your company's name.", field="name", code="required")
    if len(name) > ACCOUNT_NAME_MAX:
        raise DomainError(
            f"Keep the name to {ACCOUNT_NAME_MAX} characters or fewer (it has {len(name)}).",
            field="name",
            code="max_length",
        )
    return name


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "account"
    slug = base
    while Account.objects.filter(slug=slug).exists():
        # Only a readability nicety: the unique constraint on slug is what guarantees uniqueness,
        # and a lost race surfaces as IntegrityError, retried by the caller.
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


def account_provision(*, user: User, name: str, signup_ip: str | None, country: str = "") -> Account:
    """Create the merchant account of a newly verified user: account, owner membership, trial, audit.

    Idempotent: the account is unique per provisioning user, so a double submit or a retried request
    (even concurrent) returns the account the first one made.
    """
    name = _clean_account_name(name)
    existing = Account.objects.filter(provisioned_by=user).first()
    if existing:
        return existing
    now = timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                account = Account.objects.create(
                    name=name,
                    slug=_unique_slug(name),
                    status=AccountStatus.TRIALING,
                    country=country or "",
                    signup_ip=signup_ip,
                    billing_email=user.email,
                    trial_ends_at=now + timedelta(days=settings.TOLLBOOTH_TRIAL_DAYS),
                    provisioned_by=user,
                    created_at=now,
                    # A signup fraud sent to review makes an account on hold, in the same transaction:
                    # no window in which it could check out before the hold lands.
                    risk_hold=user.signup_risk_hold,
                )
                Membership.objects.create(user=user, account=account, role=Role.OWNER)
                audit_record(
                    account=account,
                    actor=user,
                    action="account.provisioned",
                    after={
                        "name": name,
                        "status": account.status,
                        "trial_ends_at": account.trial_ends_at.isoformat(),
                        **({"risk_hold": True} if account.risk_hold else {}),
                    },
                )
                transaction.on_commit(partial(_after_provisioning, account.pk))
                return account
        except IntegrityError:
            # Either a concurrent submit by the same user won (then return its account) or two new
            # accounts drew the same slug (then try again with a fresh one).
            existing = Account.objects.filter(provisioned_by=user).first()
            if existing:
                return existing
    raise Conflict("Could not create the account; please try again.")


def _after_provisioning(account_id: int) -> None:
    # Receivers (accounts: the welcome email; billing: the Stripe customer; fraud: the signup link) start their
    # own work from this signal, so provisioning depends on none of them.
    account_provisioned.send(sender=Account, account_id=account_id)


# Longer than an SMTP send may take (connect, TLS, DATA within Django's EMAIL_TIMEOUT): a worker that died
# mid-send leaves a claim that a retry may take over after this long.
WELCOME_SEND_LEASE = timedelta(minutes=10)


def account_send_welcome(*, account_id: int) -> bool:
    """Send the welcome email once. Returns False when it was sent, is being sent, or the account is gone.

    The claim is a lease (a conditional UPDATE of welcome_claimed_at): of two workers running the same
    task, one claims and sends, the other stops. welcome_sent_at is written only after the SMTP server
    took the message; a failed send releases the claim and raises, so the task's retry sends it then.
    A worker that dies between the send and the mark leaves a lease that expires and a second welcome
    may go out: one welcome too many after a crash is better than none.
    """
    now = timezone.now()
    claimed = (
        Account.objects.filter(pk=account_id, welcome_sent_at__isnull=True)
        .filter(Q(welcome_claimed_at__isnull=True) | Q(welcome_claimed_at__lt=now - WELCOME_SEND_LEASE))
        .update(welcome_claimed_at=now)
    )
    if not claimed:
        return False
    account = Account.objects.get(pk=account_id)
    context = {"account": account, "site_url": settings.SITE_URL, "trial_days": settings.TOLLBOOTH_TRIAL_DAYS}
    try:
        send_mail(
            subject=f"Welcome to Tollbooth, {account.name}",
            message=render_to_string("emails/welcome.txt", context),
            html_message=render_to_string("emails/welcome.html", context),
            from_email=None,
            recipient_list=[account.billing_email],
        )
    except Exception:
        # Not sent: give the claim back (only ours) so the retry can take it at once.
        Account.objects.filter(pk=account_id, welcome_claimed_at=now).update(welcome_claimed_at=None)
        raise
    Account.objects.filter(pk=account_id, welcome_sent_at__isnull=True).update(
        welcome_sent_at=timezone.now(), welcome_claimed_at=None
    )
    return True


EDITABLE_ACCOUNT_FIELDS = ("name", "country", "billing_email")

# Staff may also move the trial's end (extend a trial for a prospect, say).
STAFF_EDITABLE_ACCOUNT_FIELDS = (*EDITABLE_ACCOUNT_FIELDS, "trial_ends_at")


def account_update(*, account: Account, actor: User, changes: dict) -> Account:
    """Change the account's own settings (name, country, billing email) as its owner or admin."""
    require_manager(account=account, actor=actor)
    return _account_apply_changes(
        account=account, actor=actor, changes=changes, allowed=EDITABLE_ACCOUNT_FIELDS, action="account.updated"
    )


def account_update_by_staff(*, account: Account, actor: User, changes: dict) -> Account:
    """Change an account's settings from the admin; trial extensions included."""
    if not actor.is_staff:
        raise NotAllowed("Only staff can do this.")
    return _account_apply_changes(
        account=account,
        actor=actor,
        changes=changes,
        allowed=STAFF_EDITABLE_ACCOUNT_FIELDS,
        action="account.updated_by_staff",
    )


def _account_apply_changes(*, account: Account, actor: User, changes: dict, allowed: tuple, action: str) -> Account:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise DomainError(f"Unknown field: {', '.join(unknown)}.", field=unknown[0], code="unknown")
    if "name" in changes:
        changes = {**changes, "name": _clean_account_name(changes["name"])}
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        before = {field: plain_value(getattr(locked, field)) for field in changes}
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.save(update_fields=list(changes))
        after = {field: plain_value(getattr(locked, field)) for field in changes}
        if before != after:
            audit_record(account=locked, actor=actor, action=action, before=before, after=after)
    return locked
