"""Rating: pure arithmetic from usage and the plan's metered entitlements to amounts in cents."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from billing.models import UsagePeriod
from plans.models import Entitlement, EntitlementKind, PlanPrice


@dataclass(frozen=True)
class RatingLine:
    metric: str
    unit_name: str
    included: int
    used: int
    overage_units: int
    unit_amount_cents: int
    amount_cents: int


@dataclass(frozen=True)
class Rating:
    currency: str
    amount_cents: int
    lines: tuple[RatingLine, ...]

    def lines_as_json(self) -> list[dict]:
        return [asdict(line) for line in self.lines]


def metered_entitlements(*, plan_price: PlanPrice) -> dict[str, Entitlement]:
    return {e.feature: e for e in Entitlement.objects.filter(plan_id=plan_price.plan_id, kind=EntitlementKind.METERED)}


def usage_rate(*, plan_price: PlanPrice, metered: dict[str, Entitlement], used: dict[str, int]) -> Rating:
    """Rate usage against a plan: per metric, units beyond the included quota times the unit price.

    Exactly at the quota is free; one over costs one unit. A metric with usage the plan does not meter
    (possible only if the catalog changed under a live period) is listed with a zero price, never dropped.
    """
    lines = []
    for metric in sorted(set(metered) | {m for m, units in used.items() if units}):
        entitlement = metered.get(metric)
        units = int(used.get(metric, 0))
        included = entitlement.included_units if entitlement else 0
        unit_price = entitlement.overage_cents if entitlement else 0
        overage = max(0, units - included)
        lines.append(
            RatingLine(
                metric=metric,
                unit_name=(entitlement.unit_name if entitlement else "") or metric,
                included=included,
                used=units,
                overage_units=overage,
                unit_amount_cents=unit_price,
                amount_cents=overage * unit_price,
            )
        )
    return Rating(
        currency=plan_price.currency, amount_cents=sum(line.amount_cents for line in lines), lines=tuple(lines)
    )


def usage_period_rate(*, period: UsagePeriod) -> Rating:
    """Rate one period from its rollups (never from raw events) on the plan it is rated on."""
    used = dict(period.rollups.values_list("metric", "used"))
    return usage_rate(
        plan_price=period.plan_price, metered=metered_entitlements(plan_price=period.plan_price), used=used
    )
