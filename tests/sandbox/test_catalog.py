"""Products and prices: lookup keys, archiving, immutability, list filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stripe

FIXTURES = json.loads((Path(__file__).resolve().parents[2] / "sandbox" / "core" / "fixtures3.json").read_text())[
    "resources"
]


def monthly(stripe_client, product_id: str, amount: int = 1000, **extra):
    return stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
            "product": product_id,
            **extra,
        }
    )


def test_objects_have_exactly_the_fixture_fields(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Pro"})
    price = monthly(stripe_client, product.id)
    assert set(product.to_dict()) == set(FIXTURES["product"])
    assert set(price.to_dict()) == set(FIXTURES["price"])


def test_product_crud_and_active_filter(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Pro", "metadata": {"tier": "2"}})
    assert (product.active, product.default_price, product.livemode) == (True, None, False)
    stripe_client.v1.products.update(product.id, params={"active": False, "description": "old"})
    other = stripe_client.v1.products.create(params={"name": "Team"})
    assert [p.id for p in stripe_client.v1.products.list(params={"active": True}).data] == [other.id]
    assert stripe_client.v1.products.retrieve(product.id).description == "old"
    deleted = stripe_client.v1.products.delete(other.id)
    assert deleted.deleted is True


def test_product_with_prices_cannot_be_deleted(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Pro"})
    monthly(stripe_client, product.id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.products.delete(product.id)


def test_product_default_price_data(stripe_client):
    product = stripe_client.v1.products.create(
        params={
            "name": "Pro",
            "default_price_data": {"currency": "eur", "unit_amount": 500, "recurring": {"interval": "year"}},
        }
    )
    price = stripe_client.v1.prices.retrieve(product.default_price)
    assert (price.currency, price.unit_amount, price.recurring.interval, price.product) == (
        "eur",
        500,
        "year",
        product.id,
    )


def test_price_create_shapes(stripe_client):
    price = stripe_client.v1.prices.create(
        params={"currency": "USD", "unit_amount": 2000, "product_data": {"name": "Seat"}, "nickname": "one-off"}
    )
    assert (price.type, price.recurring, price.currency) == ("one_time", None, "usd")
    assert str(price.unit_amount_decimal) == "2000"
    yearly = monthly(stripe_client, price.product, recurring={"interval": "year", "interval_count": 1})
    assert (yearly.type, yearly.recurring.interval, yearly.recurring.usage_type) == ("recurring", "year", "licensed")


def test_price_requires_product_and_amount(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.prices.create(params={"currency": "usd", "unit_amount": 5})
    assert (info.value.code, info.value.param) == ("parameter_missing", "product")
    product = stripe_client.v1.products.create(params={"name": "Pro"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.prices.create(params={"currency": "usd", "product": product.id})
    assert (info.value.code, info.value.param) == ("parameter_missing", "unit_amount")
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.prices.create(params={"currency": "usd", "unit_amount": 1, "product": "prod_missing"})
    assert (info.value.code, info.value.param) == ("resource_missing", "product")


def test_metered_price_needs_an_existing_meter(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "API calls"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        monthly(stripe_client, product.id, recurring={"interval": "month", "usage_type": "metered"})
    assert info.value.param == "recurring[meter]"
    with pytest.raises(stripe.InvalidRequestError) as info:
        monthly(
            stripe_client, product.id, recurring={"interval": "month", "usage_type": "metered", "meter": "mtr_nope"}
        )
    assert info.value.code == "resource_missing"


def test_price_is_immutable_except_for_a_few_fields(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Pro"})
    price = monthly(stripe_client, product.id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.prices.update(price.id, params={"unit_amount": 5})  # type: ignore[typeddict-unknown-key]
    assert (info.value.code, info.value.param) == ("parameter_unknown", "unit_amount")
    updated = stripe_client.v1.prices.update(price.id, params={"nickname": "Pro monthly", "metadata": {"v": "2"}})
    assert (updated.nickname, updated.metadata.to_dict(), updated.unit_amount) == ("Pro monthly", {"v": "2"}, 1000)


def test_archiving_a_price(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Pro"})
    old = monthly(stripe_client, product.id, 1000)
    new = monthly(stripe_client, product.id, 1200)
    archived = stripe_client.v1.prices.update(old.id, params={"active": False})
    assert archived.active is False
    assert [p.id for p in stripe_client.v1.prices.list(params={"active": True}).data] == [new.id]
    assert [p.id for p in stripe_client.v1.prices.list(params={"active": False}).data] == [old.id]
    event = stripe_client.v1.events.list(params={"type": "price.updated"}).data[0]
    assert event.data.previous_attributes.to_dict() == {"active": True}


def test_lookup_key_is_unique_and_transferable(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Pro"})
    v1 = monthly(stripe_client, product.id, 1000, lookup_key="pro_monthly")
    with pytest.raises(stripe.InvalidRequestError) as info:
        monthly(stripe_client, product.id, 1200, lookup_key="pro_monthly")
    assert info.value.param == "lookup_key"
    v2 = monthly(stripe_client, product.id, 1200, lookup_key="pro_monthly", transfer_lookup_key=True)
    assert v2.lookup_key == "pro_monthly"
    assert stripe_client.v1.prices.retrieve(v1.id).lookup_key is None
    found = stripe_client.v1.prices.list(params={"lookup_keys": ["pro_monthly", "other"]})
    assert [p.id for p in found.data] == [v2.id]
    moved_back = stripe_client.v1.prices.update(
        v1.id, params={"lookup_key": "pro_monthly", "transfer_lookup_key": True}
    )
    assert moved_back.lookup_key == "pro_monthly"
    assert stripe_client.v1.prices.retrieve(v2.id).lookup_key is None


def test_price_list_filters(stripe_client):
    pro = stripe_client.v1.products.create(params={"name": "Pro"})
    team = stripe_client.v1.products.create(params={"name": "Team"})
    pro_month = monthly(stripe_client, pro.id)
    pro_year = monthly(stripe_client, pro.id, 10000, recurring={"interval": "year"})
    team_one_off = stripe_client.v1.prices.create(params={"currency": "usd", "unit_amount": 50, "product": team.id})
    assert [p.id for p in stripe_client.v1.prices.list(params={"product": pro.id}).data] == [pro_year.id, pro_month.id]
    assert [p.id for p in stripe_client.v1.prices.list(params={"type": "one_time"}).data] == [team_one_off.id]
    yearly = stripe_client.v1.prices.list(params={"recurring": {"interval": "year"}})
    assert [p.id for p in yearly.data] == [pro_year.id]
