"""Feature access: a usage burst far above the plan's daily share raises a signal (and a review).

Usage is billing's: billing reads the last day's units (`BURST_WINDOW`) and passes them in.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.entitlements import entitlements_for_account
from accounts.models import Account
from fraud.models import RiskAssessment, Stage
from fraud.selectors import DAYS_PER_PERIOD
from fraud.services.scoring import Hit, assessment_record, decision_apply, rules_active

BURST_WINDOW = timedelta(hours=24)


def usage_burst_due(*, account: Account) -> bool:
    """Whether a burst check can still fire today (the rule is on, no burst assessment in the last day)."""
    if rules_active(stage=Stage.FEATURE).get("usage_burst") is None:
        return False
    return not RiskAssessment.objects.filter(
        account=account, stage=Stage.FEATURE, signals__code="usage_burst", created_at__gte=timezone.now() - BURST_WINDOW
    ).exists()


def usage_burst_check(*, account: Account, usage_by_metric: dict[str, int]) -> RiskAssessment | None:
    """Compare the last 24 hours of usage (units per metric, read by billing) with the plan's daily share;
    at most one burst assessment a day."""
    rule = rules_active(stage=Stage.FEATURE).get("usage_burst")
    if rule is None:
        return None
    now = timezone.now()
    if RiskAssessment.objects.filter(
        account=account, stage=Stage.FEATURE, signals__code="usage_burst", created_at__gte=now - BURST_WINDOW
    ).exists():
        return None
    metered = entitlements_for_account(account=account).metered
    hits = []
    for metric, used in usage_by_metric.items():
        allowance = metered.get(metric)
        if allowance is None or not allowance.included_units:
            continue
        daily_share = allowance.included_units / DAYS_PER_PERIOD
        if used >= rule["multiple"] * daily_share:
            hits.append(
                Hit(
                    "usage_burst",
                    rule["score"],
                    {
                        "metric": metric,
                        "used_24h": used,
                        "daily_share": round(daily_share, 1),
                        "multiple": rule["multiple"],
                    },
                )
            )
    if not hits:
        return None
    assessment = assessment_record(stage=Stage.FEATURE, hits=hits[:1], account=account, note="usage burst")
    decision_apply(assessment=assessment)
    return assessment
