"""`manage.py sync_plans` against the sandbox: idempotent, and a price change moves the lookup key."""

from io import StringIO

import pytest
from django.core.management import call_command
from djstripe import models as djstripe_models

from plans.models import Plan, PlanPrice

pytestmark = pytest.mark.usefixtures("catalog")


def _sync() -> str:
    out = StringIO()
    call_command("sync_plans", stdout=out)
    return out.getvalue()


def _stripe_prices(client, **params):
    return client.v1.prices.list(params={"limit": 100, **params}).data


def test_first_sync_creates_every_product_and_price_and_mirrors_them(sandbox, stripe_client):
    output = _sync()
    assert "products created: 5" in output
    assert "prices created: 10" in output

    products = stripe_client.v1.products.list(params={"limit": 100}).data
    assert sorted(p.id for p in products) == sorted(
        f"tollbooth_{code}" for code in Plan.objects.values_list("code", flat=True)
    )
    prices = _stripe_prices(stripe_client)
    assert len(prices) == 10
    pro_monthly = PlanPrice.objects.get(plan__code="pro", interval="month")
    stripe_price = stripe_client.v1.prices.retrieve(pro_monthly.stripe_price_id)
    assert (stripe_price.unit_amount, stripe_price.currency, stripe_price.recurring.interval) == (9900, "usd", "month")
    assert stripe_price.lookup_key == "pro_month"
    # dj-stripe mirrors what Stripe holds.
    mirrored = djstripe_models.Price.objects.get(id=pro_monthly.stripe_price_id)
    assert mirrored.unit_amount == 9900
    assert djstripe_models.Product.objects.count() == 5
    assert not PlanPrice.objects.filter(stripe_price_id="").exists()


def test_second_sync_creates_nothing(sandbox, stripe_client):
    _sync()
    ids_before = dict(PlanPrice.objects.values_list("pk", "stripe_price_id"))
    output = _sync()
    assert "products created: 0" in output
    assert "prices created: 0" in output
    assert "prices unchanged: 10" in output
    assert len(_stripe_prices(stripe_client)) == 10
    assert dict(PlanPrice.objects.values_list("pk", "stripe_price_id")) == ids_before


def test_changed_amount_creates_a_new_price_moves_the_lookup_key_and_archives_the_old(sandbox, stripe_client):
    _sync()
    pro_monthly = PlanPrice.objects.get(plan__code="pro", interval="month")
    old_id = pro_monthly.stripe_price_id
    PlanPrice.objects.filter(pk=pro_monthly.pk).update(amount_cents=10900)

    output = _sync()

    assert "prices created: 1" in output
    assert f"prices archived: 1 ({old_id})" in output
    pro_monthly.refresh_from_db()
    assert pro_monthly.stripe_price_id != old_id
    new = stripe_client.v1.prices.retrieve(pro_monthly.stripe_price_id)
    old = stripe_client.v1.prices.retrieve(old_id)
    assert (new.unit_amount, new.lookup_key, new.active) == (10900, "pro_month", True)
    assert (old.lookup_key, old.active) == (None, False)
    assert [p.id for p in _stripe_prices(stripe_client, lookup_keys=["pro_month"])] == [new.id]
    assert djstripe_models.Price.objects.get(id=old_id).active is False
    # A third run is quiet again.
    assert "prices created: 0" in _sync()


def test_renamed_plan_updates_the_product(sandbox, stripe_client):
    _sync()
    Plan.objects.filter(code="basic").update(name="Basic+")
    output = _sync()
    assert "products updated: 1 (tollbooth_basic)" in output
    assert stripe_client.v1.products.retrieve("tollbooth_basic").name == "Basic+"
