"""The sandbox's HTTP behaviour shared by every resource: auth, errors, idempotency, lists, expand, events."""

from __future__ import annotations

import base64
import threading

import pytest
import stripe


def test_missing_key_is_an_authentication_error(sandbox):
    reply = sandbox.request("GET", "/v1/customers", api_key=None)
    assert reply.status == 401
    assert "did not provide an API key" in reply.body["error"]["message"]


@pytest.mark.parametrize("bad_key", ["sk_test_short", "sk_live_" + "a" * 24, "pk_test_" + "a" * 24, "nonsense"])
def test_malformed_or_live_key_raises_authentication_error(sandbox, bad_key):
    with pytest.raises(stripe.AuthenticationError):
        sandbox.client(api_key=bad_key).v1.customers.list()


def test_basic_auth_with_key_as_username_is_accepted(sandbox):
    token = base64.b64encode(f"{sandbox.api_key}:".encode()).decode()
    reply = sandbox.request("GET", "/v1/customers", api_key=None, headers={"Authorization": f"Basic {token}"})
    assert reply.status == 200
    assert reply.body["object"] == "list"


def test_unknown_url_is_stripes_404(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.raw_request("get", "/v1/nothing_here")
    assert info.value.http_status == 404
    assert "Unrecognized request URL" in info.value.user_message


def test_resource_missing(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.customers.retrieve("cus_doesnotexist")
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"
    assert info.value.param == "id"


def test_parameter_unknown(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.customers.create(params={"emali": "typo@example.com"})
    assert (info.value.http_status, info.value.code, info.value.param) == (400, "parameter_unknown", "emali")


def test_nested_parameter_unknown_is_named_with_brackets(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.prices.create(
            params={"currency": "usd", "unit_amount": 5, "product_data": {"name": "X"}, "recurring": {"every": "x"}}
        )
    assert (info.value.code, info.value.param) == ("parameter_unknown", "recurring[every]")


def test_parameter_invalid_integer(sandbox):
    reply = sandbox.request("POST", "/v1/customers", {"balance": "lots"})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "parameter_invalid_integer"
    assert reply.body["error"]["param"] == "balance"
    with pytest.raises(stripe.InvalidRequestError) as info:
        sandbox.client().v1.customers.list(params={"limit": "ten"})  # type: ignore[typeddict-item]
    assert info.value.code == "parameter_invalid_integer"


def test_parameter_missing(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.products.create(params={"description": "no name"})  # type: ignore[typeddict-item]
    assert (info.value.http_status, info.value.code, info.value.param) == (400, "parameter_missing", "name")


def test_error_body_has_stripes_shape(sandbox):
    reply = sandbox.request("GET", "/v1/prices/price_missing")
    error = reply.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["doc_url"].endswith("/resource_missing")
    assert reply.headers["Request-Id"].startswith("req_")


def test_same_idempotency_key_and_params_replays_the_response(stripe_client):
    options = {"idempotency_key": "signup-42"}
    first = stripe_client.v1.customers.create(params={"email": "once@example.com"}, options=options)
    again = stripe_client.v1.customers.create(params={"email": "once@example.com"}, options=options)
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(stripe_client.v1.customers.list().data) == 1


def test_same_idempotency_key_with_other_params_is_refused(stripe_client):
    stripe_client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k-1"})
    with pytest.raises(stripe.IdempotencyError) as info:
        stripe_client.v1.customers.create(params={"email": "b@example.com"}, options={"idempotency_key": "k-1"})
    assert info.value.http_status == 400


def test_idempotency_keys_are_scoped_per_api_key(sandbox):
    other = sandbox.client(api_key="sk_test_" + "b" * 30)
    first = sandbox.client().v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k"})
    second = other.v1.customers.create(params={"email": "b@example.com"}, options={"idempotency_key": "k"})
    assert first.id != second.id


def test_validation_failures_are_not_saved_for_replay(stripe_client):
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.products.create(params={"name": "X", "colour": "red"}, options={"idempotency_key": "p-1"})  # type: ignore[typeddict-unknown-key]
    product = stripe_client.v1.products.create(params={"name": "X"}, options={"idempotency_key": "p-1"})
    assert product.name == "X"


def test_bracketed_params_are_decoded_in_form_bodies_and_query_strings(sandbox):
    created = sandbox.request(
        "POST",
        "/v1/customers",
        [
            ("email", "nested@example.com"),
            ("metadata[plan]", "pro"),
            ("preferred_locales[]", "fr"),
            ("preferred_locales[]", "en"),
            ("address[city]", "Lyon"),
        ],
    )
    assert created.status == 200, created.body
    assert created.body["metadata"] == {"plan": "pro"}
    assert created.body["preferred_locales"] == ["fr", "en"]
    assert created.body["address"]["city"] == "Lyon"
    assert created.body["address"]["line1"] is None
    listed = sandbox.request("GET", "/v1/customers", [("email", "nested@example.com"), ("expand[]", "data.test_clock")])
    assert [c["id"] for c in listed.body["data"]] == [created.body["id"]]


def test_empty_string_unsets_a_field(stripe_client):
    customer = stripe_client.v1.customers.create(params={"name": "Ada", "metadata": {"a": "1", "b": "2"}})
    updated = stripe_client.v1.customers.update(customer.id, params={"name": "", "metadata": {"a": ""}})
    assert updated.name is None
    assert updated.metadata.to_dict() == {"b": "2"}


def test_pagination_pages_newest_first_with_cursors(stripe_client):
    ids = [stripe_client.v1.products.create(params={"name": f"P{i}"}).id for i in range(7)]
    newest_first = list(reversed(ids))
    page = stripe_client.v1.products.list(params={"limit": 3})
    assert [p.id for p in page.data] == newest_first[:3]
    assert page.has_more is True
    assert page.url == "/v1/products"
    page2 = stripe_client.v1.products.list(params={"limit": 3, "starting_after": page.data[-1].id})
    assert [p.id for p in page2.data] == newest_first[3:6]
    last = stripe_client.v1.products.list(params={"limit": 3, "starting_after": page2.data[-1].id})
    assert [p.id for p in last.data] == newest_first[6:]
    assert last.has_more is False
    before = stripe_client.v1.products.list(params={"limit": 2, "ending_before": newest_first[3]})
    assert [p.id for p in before.data] == newest_first[1:3]
    assert before.has_more is True
    assert [p.id for p in stripe_client.v1.products.list(params={"limit": 2}).auto_paging_iter()] == newest_first


def test_limit_out_of_range_is_refused(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        stripe_client.v1.products.list(params={"limit": 101})
    assert info.value.param == "limit"


def test_expand_replaces_ids_with_objects(stripe_client):
    price = stripe_client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 900, "product_data": {"name": "Basic"}}
    )
    fetched = stripe_client.v1.prices.retrieve(price.id, params={"expand": ["product", "tiers"]})
    assert fetched.product.object == "product"
    listed = stripe_client.v1.prices.list(params={"expand": ["data.product"]})
    assert listed.data[0].product.name == "Basic"


def test_events_record_changes_and_filter(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "ev@example.com"})
    stripe_client.v1.customers.update(customer.id, params={"name": "Eve"})
    stripe_client.v1.products.create(params={"name": "Thing"})
    events = stripe_client.v1.events.list()
    assert [e.type for e in events.data] == ["product.created", "customer.updated", "customer.created"]
    updated = events.data[1]
    assert updated.data.object.name == "Eve"
    assert updated.data.previous_attributes.to_dict() == {"name": None}
    assert updated["request"]["idempotency_key"]
    assert updated.api_version
    assert [e.type for e in stripe_client.v1.events.list(params={"type": "customer.*"}).data] == [
        "customer.updated",
        "customer.created",
    ]
    only = stripe_client.v1.events.list(params={"types": ["product.created"]})
    assert [e.type for e in only.data] == ["product.created"]
    assert stripe_client.v1.events.retrieve(updated.id).id == updated.id
    future = stripe_client.v1.events.list(params={"created": {"gt": updated.created + 3600}})
    assert future.data == []


def test_reset_and_state_helpers(sandbox, stripe_client):
    stripe_client.v1.customers.create(params={"email": "x@example.com"})
    state = sandbox.request("GET", "/_sandbox/state", api_key=None).body
    assert len(state["tables"]["customer"]) == 1
    sandbox.reset()
    assert stripe_client.v1.customers.list().data == []


def test_concurrent_requests_are_all_served(sandbox):
    created: list[str] = []
    failures: list[BaseException] = []

    def work():
        try:
            stripe_client = sandbox.client()
            for _ in range(10):
                created.append(stripe_client.v1.customers.create(params={"email": "many@example.com"}).id)
        except BaseException as exc:  # collected and asserted on below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(set(created)) == 80
    listed = list(sandbox.client().v1.customers.list(params={"limit": 100}).auto_paging_iter())
    assert len(listed) == 80


def test_api_requests_are_counted_by_route_and_the_counts_reset(sandbox, stripe_client):
    sandbox.request("POST", "/_sandbox/requests", {"reset": "true"}, api_key=None)
    customer = stripe_client.v1.customers.create(params={"email": "counted@example.com"})
    stripe_client.v1.customers.retrieve(customer.id)
    stripe_client.v1.customers.retrieve(customer.id)
    sandbox.request("GET", "/_sandbox/state", api_key=None)  # the sandbox's own helpers are not Stripe's API

    counted = sandbox.request("GET", "/_sandbox/requests", api_key=None).body
    assert counted["counts"] == {"POST /v1/customers": 1, "GET /v1/customers/<customer_id>": 2}
    assert counted["total"] == 3
    reset = sandbox.request("POST", "/_sandbox/requests", {"reset": "true"}, api_key=None).body
    assert (reset["total"], reset["counts"]) == (0, {})
