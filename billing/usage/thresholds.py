"""usage.threshold_reached: after a batch is booked, each period it touched is checked against its allowance.

Checked after the batch has committed (ingestion is one autocommit statement), from the rollups, so a batch whose
check was lost (a crash in between) is made up by the next batch of that period: the event is "reached", not
"crossed by this batch", and its key makes it once per period, metric and threshold. Periods on the way to their
thresholds cost one query per batch; the events themselves only when reached.
"""

from __future__ import annotations

from accounts.models import Account
from billing.domain_events import usage_thresholds_record
from billing.models import UsageEvent, UsagePeriod, UsageRollup


def usage_thresholds_check(*, event_ids: list[int]) -> int:
    """Record the threshold events the periods of these new events have reached; how many were new."""
    if not event_ids:
        return 0
    period_ids = set(UsageEvent.objects.filter(pk__in=event_ids).values_list("period_id", flat=True))
    used: dict[int, dict[str, int]] = {}
    for period_id, metric, units in UsageRollup.objects.filter(period_id__in=period_ids).values_list(
        "period_id", "metric", "used"
    ):
        used.setdefault(period_id, {})[metric] = units
    periods = [p for p in UsagePeriod.objects.filter(pk__in=period_ids) if _reached_any(p, used.get(p.pk, {}))]
    if not periods:
        return 0
    public_ids = dict(Account.objects.filter(pk__in={p.account_id for p in periods}).values_list("pk", "public_id"))
    return sum(
        usage_thresholds_record(
            account_id=p.account_id, public_id=str(public_ids[p.account_id]), period=p, used=used[p.pk]
        )
        for p in periods
    )


def _reached_any(period: UsagePeriod, used: dict[str, int]) -> bool:
    metrics = (period.terms or {}).get("metrics") or {}
    return any(
        (metrics.get(metric) or {}).get("included", 0) > 0 and units * 100 >= metrics[metric]["included"] * 80
        for metric, units in used.items()
    )
