"""Rating: pure arithmetic from usage and a period's metered terms to amounts in cents."""

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


def metered_terms(*, plan_price: PlanPrice, metered: dict[str, Entitlement]) -> dict:
    """The snapshot of a plan's metered terms that a period is rated on (UsagePeriod.terms)."""
    return {
        "currency": plan_price.currency,
        "metrics": {
            metric: {
                "included": e.included_units or 0,
                "unit_amount_cents": e.overage_cents or 0,
                "unit_name": e.unit_name or metric,
            }
            for metric, e in sorted(metered.items())
        },
    }


def usage_rate(*, plan_price: PlanPrice, metered: dict[str, Entitlement], used: dict[str, int]) -> Rating:
    """Rate usage against a plan's entitlements as they are today (see usage_rate_terms)."""
    return usage_rate_terms(terms=metered_terms(plan_price=plan_price, metered=metered), used=used)


def usage_rate_terms(*, terms: dict, used: dict[str, int], trial: bool = False) -> Rating:
    """Rate usage against metered terms: per metric, units beyond the included quota times the unit price.

    Exactly at the quota is free; one over costs one unit. A metric with usage the terms do not meter
    (possible only if the catalog changed under a live period) is listed with a zero price, never dropped.
    A trial's usage is counted but never billed: its lines show what was used, with nothing over.
    """
    metered = terms.get("metrics") or {}
    lines = []
    for metric in sorted(set(metered) | {m for m, units in used.items() if units}):
        term = metered.get(metric) or {}
        units = int(used.get(metric, 0))
        included = int(term.get("included", 0))
        unit_price = int(term.get("unit_amount_cents", 0))
        overage = 0 if trial else max(0, units - included)
        lines.append(
            RatingLine(
                metric=metric,
                unit_name=term.get("unit_name") or metric,
                included=included,
                used=units,
                overage_units=overage,
                unit_amount_cents=unit_price,
                amount_cents=overage * unit_price,
            )
        )
    return Rating(
        currency=terms.get("currency") or "usd",
        amount_cents=sum(line.amount_cents for line in lines),
        lines=tuple(lines),
    )


def period_terms(*, period: UsagePeriod) -> dict:
    """The terms a period is rated on: its snapshot; for a period stored before snapshots, its plan's today."""
    if period.terms:
        return period.terms
    return metered_terms(plan_price=period.plan_price, metered=metered_entitlements(plan_price=period.plan_price))


def usage_period_rate(*, period: UsagePeriod) -> Rating:
    """Rate one period from its rollups (never from raw events) on the terms it is rated on."""
    used = dict(period.rollups.values_list("metric", "used"))
    return usage_rate_terms(terms=period_terms(period=period), used=used, trial=period.trial)
