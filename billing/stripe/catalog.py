"""The plans catalog synced to Stripe Products and Prices, idempotently."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import stripe
from djstripe import models as djstripe_models

from billing.stripe.client import idempotent, stripe_api_key, stripe_client
from plans.models import Plan, PlanPrice

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    products_created: list[str] = field(default_factory=list)
    products_updated: list[str] = field(default_factory=list)
    prices_created: list[str] = field(default_factory=list)
    prices_archived: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.products_created or self.products_updated or self.prices_created or self.prices_archived)


def product_id_for(plan: Plan) -> str:
    return f"tollbooth_{plan.code}"


def catalog_sync_to_stripe() -> SyncReport:
    """Make Stripe's products and prices match the catalog; record each price's Stripe id."""
    client = stripe_client()
    report = SyncReport()
    for plan in Plan.objects.prefetch_related("prices").order_by("rank"):
        product = _ensure_product(client, plan, report)
        for price in plan.prices.all():
            _ensure_price(client, product, price, report)
    return report


def _ensure_product(client: stripe.StripeClient, plan: Plan, report: SyncReport):
    product_id = product_id_for(plan)
    wanted = {"name": plan.name, "description": plan.description or None, "active": plan.is_active}
    try:
        product = client.v1.products.retrieve(product_id)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise
        product = client.v1.products.create(
            params={
                "id": product_id,
                **{k: v for k, v in wanted.items() if v is not None},
                "metadata": {"plan_code": plan.code},
            },
            options=idempotent(f"catalog:product:{plan.code}"),
        )
        report.products_created.append(product_id)
    else:
        changes = {k: v for k, v in wanted.items() if product.get(k) != v and not (v is None and not product.get(k))}
        if changes:
            digest = ",".join(f"{k}={v}" for k, v in sorted(changes.items()))
            product = client.v1.products.update(
                product_id,
                params={k: ("" if v is None else v) for k, v in changes.items()},
                options=idempotent(f"catalog:product:{plan.code}:update:{hash_of(digest)}"),
            )
            report.products_updated.append(product_id)
    djstripe_models.Product.sync_from_stripe_data(product, api_key=stripe_api_key())
    return product


def _ensure_price(client: stripe.StripeClient, product, price: PlanPrice, report: SyncReport) -> None:
    lookup_key = price.lookup_key
    found = client.v1.prices.list(params={"lookup_keys": [lookup_key], "limit": 1})
    current = found.data[0] if found.data else None
    matches = (
        current is not None
        and current.unit_amount == price.amount_cents
        and current.currency == price.currency
        and current.recurring
        and current.recurring.interval == price.interval
        and current.product == product.id
    )
    if matches:
        if current.active != price.is_active:
            current = client.v1.prices.update(
                current.id,
                params={"active": price.is_active},
                options=idempotent(f"catalog:price:{current.id}:active:{price.is_active}"),
            )
            (report.prices_archived if not price.is_active else report.prices_created).append(current.id)
        else:
            report.unchanged += 1
    else:
        created = client.v1.prices.create(
            params={
                "product": product.id,
                "currency": price.currency,
                "unit_amount": price.amount_cents,
                "recurring": {"interval": price.interval},
                "lookup_key": lookup_key,
                "transfer_lookup_key": True,
                "nickname": f"{price.plan.name} {price.get_interval_display().lower()}",
                "metadata": {"plan_code": price.plan.code, "interval": price.interval},
                "active": price.is_active,
            },
            options=idempotent(f"catalog:price:{lookup_key}:{price.currency}:{price.amount_cents}"),
        )
        report.prices_created.append(created.id)
        if current is not None and current.active:
            archived = client.v1.prices.update(
                current.id, params={"active": False}, options=idempotent(f"catalog:price:{current.id}:archive")
            )
            djstripe_models.Price.sync_from_stripe_data(archived, api_key=stripe_api_key())
            report.prices_archived.append(current.id)
        current = created
    djstripe_models.Price.sync_from_stripe_data(current, api_key=stripe_api_key())
    if price.stripe_price_id != current.id:
        PlanPrice.objects.filter(pk=price.pk).update(stripe_price_id=current.id)


def hash_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
