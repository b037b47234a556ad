"""Reads of the catalog."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from plans.models import Entitlement, Plan, PlanPrice


def plans_public() -> QuerySet[Plan]:
    """The plans merchants may choose, smallest first, with their active prices and entitlements."""
    return (
        Plan.objects.filter(is_public=True, is_active=True)
        .prefetch_related(
            Prefetch("prices", queryset=PlanPrice.objects.filter(is_active=True).order_by("interval")),
            Prefetch("entitlements", queryset=Entitlement.objects.order_by("kind", "feature")),
        )
        .order_by("rank")
    )


def plan_price_by_stripe_id(*, stripe_price_id: str) -> PlanPrice | None:
    return PlanPrice.objects.select_related("plan").filter(stripe_price_id=stripe_price_id).first()


def annual_saving_cents(*, plan: Plan) -> int | None:
    """What a year costs less on the annual price than on twelve monthly ones (same currency)."""
    prices = {price.interval: price for price in plan.prices.all() if price.currency == "usd"}
    if "month" in prices and "year" in prices:
        return prices["month"].amount_cents * 12 - prices["year"].amount_cents
    return None
