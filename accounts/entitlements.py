"""What an account may use now: its plan's entitlements, as one value computed once per request.

The plan in force is the account's plan (kept by billing from the Stripe subscription), or the trial plan
(setting TOLLBOOTH_TRIAL_PLAN) while trialing without one. Suspended, blocked and closed accounts keep
their limits (so pages can explain them) but get none of the gated features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from accounts.models import Account, AccountStatus
from plans.models import EntitlementKind, Plan

NO_FEATURES_STATUSES = frozenset({AccountStatus.SUSPENDED, AccountStatus.BLOCKED, AccountStatus.CLOSED})


@dataclass(frozen=True)
class Metered:
    included_units: int
    overage_cents: int
    unit_name: str


@dataclass(frozen=True)
class Entitlements:
    plan: Plan | None
    limits: dict[str, int] = field(default_factory=dict)
    features: frozenset[str] = frozenset()
    metered: dict[str, Metered] = field(default_factory=dict)

    def has(self, feature: str) -> bool:
        """A gated feature: an on/off flag, or a metered allowance the plan includes."""
        return feature in self.features

    def limit(self, name: str) -> int | None:
        return self.limits.get(name)

    @property
    def seat_limit(self) -> int | None:
        return self.limits.get("seats")


def plan_in_force(*, account: Account) -> Plan | None:
    if account.plan_id:
        return account.plan
    if account.status == AccountStatus.TRIALING:
        return Plan.objects.filter(code=settings.TOLLBOOTH_TRIAL_PLAN).first()
    return None


def entitlements_for_account(*, account: Account) -> Entitlements:
    plan = plan_in_force(account=account)
    if plan is None:
        return Entitlements(plan=None)
    limits, features, metered = {}, set(), {}
    for entitlement in plan.entitlements.all():
        if entitlement.kind == EntitlementKind.LIMIT:
            limits[entitlement.feature] = entitlement.limit
        elif entitlement.kind == EntitlementKind.METERED:
            metered[entitlement.feature] = Metered(
                entitlement.included_units, entitlement.overage_cents, entitlement.unit_name
            )
            features.add(entitlement.feature)
        else:
            features.add(entitlement.feature)
    if account.status in NO_FEATURES_STATUSES:
        features = set()
    return Entitlements(plan=plan, limits=limits, features=frozenset(features), metered=metered)


def request_entitlements(request, account: Account) -> Entitlements:
    """The entitlements of the request's account, computed once per request."""
    cached = getattr(request, "_tollbooth_entitlements", None)
    if cached is None or cached[0] != account.pk:
        cached = (account.pk, entitlements_for_account(account=account))
        request._tollbooth_entitlements = cached
    return cached[1]


def smallest_plan_with(*, seats: int) -> Plan | None:
    """The smallest public plan whose seat limit fits `seats`: what to suggest when a limit is hit."""
    return (
        Plan.objects.filter(
            is_public=True, is_active=True, entitlements__feature="seats", entitlements__limit__gte=seats
        )
        .order_by("rank")
        .first()
    )
