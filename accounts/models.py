"""Users, the merchants they belong to (our tenants), memberships, API keys and the audit log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_countries.fields import CountryField


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in. Email is the login; there is no username."""

    email = models.EmailField("email address", max_length=254, unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin site.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    signup_ip = models.GenericIPAddressField(null=True, blank=True)
    # Fraud sent this signup to review before the user had an account: the account they provision starts
    # on hold (see Account.risk_hold). Set through accounts.services only.
    signup_risk_hold = models.BooleanField(default=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            # Two addresses that differ only in case are one person's: unique case-insensitively.
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email


class AccountStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    SUSPENDED = "suspended", "Suspended"
    BLOCKED = "blocked", "Blocked"
    CLOSED = "closed", "Closed"


class Account(models.Model):
    """A merchant: our tenant. Everything a customer sees is scoped to one account."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    # The account's name outside this database: Stripe idempotency keys and customer metadata use it, because
    # databases sharing a Stripe account (staging, CI, a restored backup) reuse primary keys for other merchants.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=20, choices=AccountStatus.choices, default=AccountStatus.TRIALING)
    country = CountryField(blank=True)
    signup_ip = models.GenericIPAddressField(null=True, blank=True)
    billing_email = models.EmailField(max_length=254)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    # The user whose onboarding created this account. Unique: a retried or doubled onboarding submit
    # finds the account it already made instead of making a second one.
    provisioned_by = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="provisioned_account",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set once the SMTP server took the welcome email (not when a worker claims the send).
    welcome_sent_at = models.DateTimeField(null=True, blank=True)
    # The welcome email's send lease: a worker claims the send by setting it (conditional UPDATE), sets
    # welcome_sent_at only once the SMTP server took the message, and clears it if the send failed.
    welcome_claimed_at = models.DateTimeField(null=True, blank=True)
    # The plan in force, kept by billing from the account's Stripe subscription (None: no plan chosen yet,
    # the trial plan applies). The catalog is a leaf app, so accounts may point at it.
    plan = models.ForeignKey("plans.Plan", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Fraud review pending: the account works, but cannot check out, invite or create API keys until ops
    # approve it. Set and cleared by fraud through `account_set_risk_hold` (audited); merchants see only that
    # a review is under way, never why.
    risk_hold = models.BooleanField(default=False)
    # When the account earned good standing before its age did: first invoice paid, or approved by fraud ops.
    trusted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.name

    @property
    def email(self) -> str:
        """The address Stripe and dj-stripe know this merchant by."""
        return self.billing_email


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    AGENT = "agent", "Agent"


class Membership(models.Model):
    """A user's place in an account, with a role."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="membership_user_account_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"


class ApiKey(models.Model):
    """A machine client's credential for one account. Only a hash of the secret is stored."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The public part of the key, shown in lists so a merchant can tell keys apart; also the lookup.
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AuditLog(models.Model):
    """Who did what to which account, when, with the state before and after. Written by services only."""

    account = models.ForeignKey(Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_log")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    # Kept beside the FK so the row still says who acted after the user is gone; "system" for tasks.
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=120, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"


class Invitation(models.Model):
    """An invitation by email to join an account with a role. The link is signed; the row makes it single use."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    status = models.CharField(max_length=10, choices=InvitationStatus.choices, default=InvitationStatus.PENDING)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_sent_at = models.DateTimeField(default=timezone.now)
    send_count = models.PositiveSmallIntegerField(default=1)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One live invitation per address and account: a second invite of the same person is refused
            # by the database, whatever two requests race.
            models.UniqueConstraint(
                "account", Lower("email"), condition=models.Q(status="pending"), name="one_pending_invitation_per_email"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.account} ({self.role}, {self.status})"

    @property
    def is_expired(self) -> bool:
        return self.status == InvitationStatus.PENDING and self.expires_at <= timezone.now()
