"""The catalog: plans, their prices and what each includes (entitlements)."""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models


class Plan(models.Model):
    """A plan merchants can buy. Hidden plans (`is_public=False`) are sold by sales, not on the pricing page."""

    code = models.SlugField(max_length=40, unique=True, help_text="Stable identifier, e.g. 'pro'.")
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    # Higher rank = bigger plan: decides upgrade vs downgrade and "the next plan up".
    rank = models.PositiveSmallIntegerField(unique=True)
    is_public = models.BooleanField(default=True, help_text="Shown on the pricing page and selectable by merchants.")
    is_active = models.BooleanField(default=True, help_text="Archived plans keep their subscribers but sell no more.")
    per_seat = models.BooleanField(
        default=False, help_text="Priced per seat: the subscription's quantity follows the number of active members."
    )

    class Meta:
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.name


class BillingInterval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Annual"


class PlanPrice(models.Model):
    """What a plan costs per interval and currency, in minor units. Mirrors one Stripe Price (by lookup key)."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="prices")
    interval = models.CharField(max_length=5, choices=BillingInterval.choices)
    currency = models.CharField(
        max_length=3, default="usd", validators=[RegexValidator(r"^[a-z]{3}$", "Use a 3-letter lowercase ISO code.")]
    )
    amount_cents = models.PositiveIntegerField(validators=[MinValueValidator(0)])
    is_active = models.BooleanField(default=True)
    # Set by `manage.py sync_plans`: the Stripe Price currently carrying this price's lookup key.
    stripe_price_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["plan__rank", "interval"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "interval", "currency"], name="planprice_plan_interval_currency"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} {self.get_interval_display().lower()} ({self.amount_cents / 100:.2f} {self.currency})"

    @property
    def lookup_key(self) -> str:
        """The Stripe lookup key: plan code + interval (+ currency when not the default)."""
        suffix = "" if self.currency == "usd" else f"_{self.currency}"
        return f"{self.plan.code}_{self.interval}{suffix}"


# How merchants read the on/off features a plan may include (pricing page, dashboard).
FEATURE_LABELS = {
    "api_access": "API access",
    "automation": "Automation rules",
    "voice": "Voice",
    "sso": "Single sign-on",
}


class EntitlementKind(models.TextChoices):
    LIMIT = "limit", "Limit"  # a count that may not be exceeded (seats)
    FLAG = "flag", "Feature"  # on when present
    METERED = "metered", "Metered"  # included units per usage period, then an overage price per unit


class Entitlement(models.Model):
    """One thing a plan includes: a feature flag, a limit, or a metered allowance with overage."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="entitlements")
    feature = models.SlugField(max_length=40, help_text="e.g. seats, tickets, automation, voice, api_access")
    kind = models.CharField(max_length=10, choices=EntitlementKind.choices)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="For limits: the maximum.")
    included_units = models.PositiveIntegerField(null=True, blank=True, help_text="For metered: units per period.")
    overage_cents = models.PositiveIntegerField(null=True, blank=True, help_text="For metered: price per extra unit.")
    unit_name = models.CharField(max_length=40, blank=True, help_text="For metered: e.g. 'ticket'.")

    class Meta:
        ordering = ["plan__rank", "kind", "feature"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "feature"], name="entitlement_plan_feature"),
            models.CheckConstraint(
                name="entitlement_fields_match_kind",
                condition=(
                    models.Q(kind="limit", limit__isnull=False, included_units__isnull=True, overage_cents__isnull=True)
                    | models.Q(kind="flag", limit__isnull=True, included_units__isnull=True, overage_cents__isnull=True)
                    | models.Q(
                        kind="metered", limit__isnull=True, included_units__isnull=False, overage_cents__isnull=False
                    )
                ),
            ),
        ]

    def __str__(self) -> str:
        if self.kind == EntitlementKind.LIMIT:
            return f"{self.feature} ≤ {self.limit}"
        if self.kind == EntitlementKind.METERED:
            return f"{self.included_units} {self.unit_name or self.feature} included, then {self.overage_cents}¢ each"
        return self.feature

    def clean(self):
        from django.core.exceptions import ValidationError

        required = {
            EntitlementKind.LIMIT: ["limit"],
            EntitlementKind.METERED: ["included_units", "overage_cents"],
            EntitlementKind.FLAG: [],
        }.get(self.kind, [])
        forbidden = {"limit", "included_units", "overage_cents"} - set(required)
        errors = {name: "Required for this kind." for name in required if getattr(self, name) is None}
        errors |= {name: "Leave empty for this kind." for name in forbidden if getattr(self, name) is not None}
        if errors:
            raise ValidationError(errors)
