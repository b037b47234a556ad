"""Fraud: rules ops tune, blocklists, the signals each check raises, and the decisions they add up to."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class Stage(models.TextChoices):
    SIGNUP = "signup", "Signup"
    PAYMENT = "payment", "Payment"
    FEATURE = "feature", "Feature access"
    CHARGEBACK = "chargeback", "Chargeback"


class Decision(models.TextChoices):
    ALLOW = "allow", "Allow"
    REVIEW = "review", "Review"
    BLOCK = "block", "Block"


class DecidedBy(models.TextChoices):
    SYSTEM = "system", "System"
    STAFF = "staff", "Staff"


class Rule(models.Model):
    """A check ops can tune: its kind fixes the stage and which parameters it takes (fraud/rules.py)."""

    kind = models.CharField(max_length=40, unique=True)
    stage = models.CharField(max_length=12, choices=Stage.choices, editable=False)
    parameters = models.JSONField(default=dict, blank=True)
    score = models.PositiveSmallIntegerField(help_text="Added to the decision's score when the rule fires.")
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stage", "kind"]

    def __str__(self) -> str:
        return f"{self.kind} (+{self.score})"


class BlocklistKind(models.TextChoices):
    EMAIL = "email", "Email address"
    EMAIL_DOMAIN = "email_domain", "Email domain"
    IP = "ip", "IP address or CIDR range"
    CARD_FINGERPRINT = "card_fingerprint", "Card fingerprint"
    COUNTRY = "country", "Country"


class BlocklistEntry(models.Model):
    kind = models.CharField(max_length=20, choices=BlocklistKind.choices)
    # Normalised on save by fraud/blocklist.py: lower-case email/domain, canonical CIDR, upper-case country.
    value = models.CharField(max_length=254)
    reason = models.CharField(max_length=200)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "blocklist entry"
        verbose_name_plural = "blocklist"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint("kind", Lower("value"), name="blocklist_kind_value_unique")]
        indexes = [models.Index(fields=["kind", "value"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"


class RiskAssessment(models.Model):
    """One decision at one stage: the score of its signals, allow/review/block, by the system or staff."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, null=True, blank=True, related_name="risk_assessments"
    )
    # At signup there is no account yet: the address (and then the user) say whose signup it was.
    email = models.EmailField(max_length=254, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    stage = models.CharField(max_length=12, choices=Stage.choices)
    score = models.PositiveIntegerField(default=0)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    decided_by = models.CharField(max_length=8, choices=DecidedBy.choices, default=DecidedBy.SYSTEM)
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # The client's country where a trusted proxy tells it (FRAUD_IP_COUNTRY_HEADER); ISO code or empty.
    ip_country = models.CharField(max_length=2, blank=True)
    device_id = models.CharField(max_length=64, blank=True, db_index=True)
    # Card testing: checkout stays refused to this account (and this IP) until then.
    cooloff_until = models.DateTimeField(null=True, blank=True)
    # A review leaves the queue when staff decide it (or a later decision supersedes it).
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["decision", "resolved_at"]),
            models.Index(fields=["ip", "created_at"]),
        ]

    def __str__(self) -> str:
        who = self.account or self.email or "?"
        return f"{self.get_stage_display()} {self.decision} ({self.score}) — {who}"

    @property
    def reasons(self) -> list[str]:
        return [signal.code for signal in self.signals.all()]


class RiskSignal(models.Model):
    """One thing a check noticed, with the score it added and its evidence (counts, values)."""

    assessment = models.ForeignKey(RiskAssessment, on_delete=models.CASCADE, related_name="signals")
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, null=True, blank=True, related_name="risk_signals"
    )
    stage = models.CharField(max_length=12, choices=Stage.choices)
    code = models.CharField(max_length=40, db_index=True)
    score = models.PositiveSmallIntegerField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-score", "code"]

    def __str__(self) -> str:
        return f"{self.code} +{self.score}"


class PaymentFingerprint(models.Model):
    """Which card fingerprints each account has used: the cross-account reuse check reads it. One row per pair."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    fingerprint = models.CharField(max_length=64, db_index=True)
    first_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "fingerprint"], name="payment_fingerprint_unique")]

    def __str__(self) -> str:
        return f"{self.fingerprint} on account {self.account_id}"


class DisputeStatus(models.TextChoices):
    OPEN = "open", "Open — evidence not submitted"
    SUBMITTED = "submitted", "Evidence submitted"
    CLOSED = "closed", "Closed"


class DisputeCase(models.Model):
    """A chargeback against one of our charges, and the evidence packet ops send back to Stripe."""

    dispute_id = models.CharField(max_length=255, unique=True)
    charge_id = models.CharField(max_length=255, blank=True)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, null=True, related_name="+")
    reason = models.CharField(max_length=60, blank=True)
    amount_cents = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    status = models.CharField(max_length=10, choices=DisputeStatus.choices, default=DisputeStatus.OPEN)
    evidence = models.JSONField(default=dict, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.dispute_id} ({self.get_status_display()})"
