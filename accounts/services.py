"""Writes for accounts: provisioning, updates, status transitions, API keys and the audit log."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from accounts.entitlements import entitlements_for_account
from accounts.errors import Conflict, DomainError, NotAllowed
from accounts.models import Account, AccountStatus, ApiKey, AuditLog, Membership, Role, User
from accounts.signals import account_provisioned

logger = logging.getLogger(__name__)

SYSTEM = "system"
ACCOUNT_NAME_MAX = 200
# Roles that manage the account itself (its settings, billing, team and keys).
MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def audit_record(
    *,
    account: Account | None,
    actor: User | None,
    action: str,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditLog:
    """Write one audit row. Call it inside the transaction of the change it records."""
    return AuditLog.objects.create(
        account=account,
        actor=actor,
        actor_label=actor.email if actor else SYSTEM,
        action=action,
        target=target or (f"account:{account.pk}" if account else ""),
        before=before or {},
        after=after or {},
        reason=reason,
    )


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
    from accounts.tasks import send_welcome_email  # tasks import services: import here, not at module load

    send_welcome_email.delay(account_id)
    # Other apps (billing: the Stripe customer) start their own provisioning from this signal,
    # so accounts depends on none of them.
    account_provisioned.send(sender=Account, account_id=account_id)


def account_send_welcome(*, account_id: int) -> bool:
    """Send the welcome email once. Returns False when it was already sent (or the account is gone).

    The conditional UPDATE is the claim: of two workers running the same task, one updates the row and
    sends; the other updates nothing and stops.
    """
    claimed = Account.objects.filter(pk=account_id, welcome_sent_at__isnull=True).update(welcome_sent_at=timezone.now())
    if not claimed:
        return False
    account = Account.objects.get(pk=account_id)
    context = {"account": account, "site_url": settings.SITE_URL, "trial_days": settings.TOLLBOOTH_TRIAL_DAYS}
    send_mail(
        subject=f"Welcome to Tollbooth, {account.name}",
        message=render_to_string("emails/welcome.txt", context),
        html_message=render_to_string("emails/welcome.html", context),
        from_email=None,
        recipient_list=[account.billing_email],
    )
    return True


def require_manager(*, account: Account, actor: User) -> Membership:
    membership = Membership.objects.filter(account=account, user=actor, is_active=True).first()
    if membership is None or membership.role not in MANAGER_ROLES:
        raise NotAllowed("Only the account's owners and admins can do this.")
    return membership


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
        before = {field: _plain(getattr(locked, field)) for field in changes}
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.save(update_fields=list(changes))
        after = {field: _plain(getattr(locked, field)) for field in changes}
        if before != after:
            audit_record(account=locked, actor=actor, action=action, before=before, after=after)
    return locked


def _plain(value) -> str | None:
    """A JSON-friendly rendering of a field value for the audit log."""
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# Legal status moves. A move not listed here is a bug or an attack, and is refused.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    AccountStatus.TRIALING: {
        AccountStatus.ACTIVE,
        AccountStatus.SUSPENDED,
        AccountStatus.BLOCKED,
        AccountStatus.CLOSED,
    },
    AccountStatus.ACTIVE: {
        AccountStatus.PAST_DUE,
        AccountStatus.SUSPENDED,
        AccountStatus.BLOCKED,
        AccountStatus.CLOSED,
    },
    AccountStatus.PAST_DUE: {
        AccountStatus.ACTIVE,
        AccountStatus.SUSPENDED,
        AccountStatus.BLOCKED,
        AccountStatus.CLOSED,
    },
    AccountStatus.SUSPENDED: {AccountStatus.ACTIVE, AccountStatus.BLOCKED, AccountStatus.CLOSED},
    AccountStatus.BLOCKED: {AccountStatus.SUSPENDED, AccountStatus.ACTIVE, AccountStatus.CLOSED},
    AccountStatus.CLOSED: {AccountStatus.ACTIVE},
}


def account_set_plan(*, account: Account, plan, reason: str) -> Account:
    """Record the plan in force (billing calls this when the subscription's price changes). Audited."""
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        if locked.plan_id == (plan.pk if plan else None):
            return locked
        before = locked.plan.code if locked.plan_id else None
        locked.plan = plan
        locked.save(update_fields=["plan"])
        audit_record(
            account=locked,
            actor=None,
            action="account.plan_changed",
            before={"plan": before},
            after={"plan": plan.code if plan else None},
            reason=reason,
        )
    return locked


def account_change_status(*, account: Account, to: str, actor: User | None, reason: str) -> Account:
    """Move an account to another status: row locked, move checked, audited. Same status is a no-op."""
    to = AccountStatus(to)
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        if locked.status == to:
            return locked
        if to not in ALLOWED_TRANSITIONS[locked.status]:
            raise Conflict(
                f"An account that is {locked.get_status_display().lower()} cannot become {to.label.lower()}."
            )
        before = locked.status
        locked.status = to
        locked.save(update_fields=["status"])
        audit_record(
            account=locked,
            actor=actor,
            action="account.status_changed",
            before={"status": before},
            after={"status": to.value},
            reason=reason,
        )
    return locked


# --- fraud standing -------------------------------------------------------------------------------------
# Fraud decides; accounts only keeps the outcome (two fields) and enforces it, so nothing here imports fraud.

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
            after={"trusted_at": _plain(locked.trusted_at)},
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


API_KEY_PREFIX = "tb_"


def _hash_secret(secret: str) -> str:
    # The secret is 32 random bytes: a fast hash is safe (nothing to brute-force) and keeps
    # authentication cheap on every API call.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, account: Account, actor: User, name: str) -> tuple[ApiKey, str]:
    """Issue an API key for the account. Returns the key and its plaintext, which is never stored."""
    require_manager(account=account, actor=actor)
    # API keys are a costly feature (scripted abuse): good standing first, then the plan.
    require_good_standing(account=account, action="creating API keys")
    if not entitlements_for_account(account=account).has("api_access"):
        raise NotAllowed(
            "Your plan doesn't include API access; upgrade to create API keys.", code="feature_not_in_plan"
        )
    name = " ".join((name or "").split())
    if not name:
        raise DomainError("Give the key a name, e.g. the system that will use it.", field="name", code="required")
    if len(name) > 100:
        raise DomainError("Keep the key's name to 100 characters or fewer.", field="name", code="max_length")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            account=account, name=name, prefix=prefix, secret_hash=_hash_secret(secret), created_by=actor
        )
        audit_record(
            account=account,
            actor=actor,
            action="api_key.created",
            target=f"api_key:{api_key.pk}",
            after={"name": name, "prefix": prefix},
        )
    return api_key, f"{API_KEY_PREFIX}{prefix}_{secret}"


def api_key_revoke(*, api_key: ApiKey, actor: User) -> ApiKey:
    """Revoke a key at once; requests made with it are refused from now on. Revoking twice is a no-op."""
    if not actor.is_staff:
        require_manager(account=api_key.account, actor=actor)
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            audit_record(
                account=locked.account,
                actor=actor,
                action="api_key.revoked",
                target=f"api_key:{locked.pk}",
                before={"revoked": False},
                after={"revoked": True},
            )
    return locked


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """Return the live key matching a presented secret, or None. Constant-time on the secret."""
    if not raw_key.startswith(API_KEY_PREFIX) or raw_key.count("_") < 2:
        return None
    prefix, _, secret = raw_key[len(API_KEY_PREFIX) :].partition("_")
    api_key = ApiKey.objects.select_related("account").filter(prefix=prefix, revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, _hash_secret(secret)):
        return None
    # Touch at most once a minute: a busy client must not turn every read into a write.
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(minutes=1):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
