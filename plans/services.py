"""Catalog edits: what changed, told to the audit log (who, before, after) in the edit's transaction."""

from __future__ import annotations

from django.db import models

from plans.models import Entitlement, Plan, PlanPrice
from plans.signals import catalog_edited

# The fields whose change is a change of terms someone may ask about later.
AUDITED_FIELDS = {
    Plan: ("code", "name", "rank", "is_public", "is_active", "per_seat"),
    PlanPrice: ("plan_id", "interval", "currency", "amount_cents", "is_active", "stripe_price_id"),
    Entitlement: ("plan_id", "feature", "kind", "limit", "included_units", "overage_cents", "unit_name"),
}


def catalog_fields(instance: models.Model | None) -> dict:
    """The audited fields of a catalog row as plain values ({} for none)."""
    if instance is None:
        return {}
    return {field: _plain(getattr(instance, field)) for field in AUDITED_FIELDS[type(instance)]}


def catalog_row_before(model: type[models.Model], pk) -> dict:
    """The stored row's audited fields, read before an edit is saved (the form has changed the instance)."""
    return catalog_fields(model.objects.filter(pk=pk).first()) if pk else {}


def catalog_edit_record(*, actor, model: type[models.Model], pk, before: dict, after: dict) -> bool:
    """Tell the audit log about one catalog row created, changed or deleted (after == {}); nothing if unchanged.

    Only the fields that changed are recorded, before and after.
    """
    if before == after:
        return False
    what = "deleted" if not after else ("changed" if before else "created")
    name = model._meta.model_name
    catalog_edited.send(
        sender=model,
        actor=actor,
        action=f"catalog.{name}_{what}",
        target=f"{name}:{pk}",
        before={key: value for key, value in before.items() if after.get(key) != value},
        after={key: value for key, value in after.items() if before.get(key) != value},
    )
    return True


def _plain(value):
    return value if value is None or isinstance(value, bool | int) else str(value)
