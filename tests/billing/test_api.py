"""Plans, subscription, invoices and checkout endpoints with owner, agent of the same account, and outsider."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.models import CheckoutAttempt
from plans.models import Plan, PlanPrice

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture
def synced(sandbox, catalog):
    """The catalog pushed to the sandbox, as `make run` does."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return catalog


def test_plans_are_public_and_hide_hidden_plans(db):
    body = APIClient().get("/api/v1/plans").json()
    assert [plan["code"] for plan in body] == ["starter", "basic", "pro", "advanced"]
    pro = body[2]
    assert {(p["interval"], p["amount_cents"]) for p in pro["prices"]} == {("month", 9900), ("year", 99000)}
    assert pro["annual_saving_cents"] == 9900 * 12 - 99000
    tickets = next(e for e in pro["entitlements"] if e["feature"] == "tickets")
    assert (tickets["included_units"], tickets["overage_cents"]) == (2000, 20)


def test_subscription_without_a_plan_is_null_for_owner_and_refused_to_agent(owner, agent):
    assert owner.api().get("/api/v1/subscription").json() == {"account_status": "trialing", "subscription": None}
    response = agent.api().get("/api/v1/subscription")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "billing_only"
    assert agent.api().get("/api/v1/invoices").status_code == 403


def test_invoices_are_scoped_to_the_callers_account(owner, outsider):
    assert owner.api().get("/api/v1/invoices").json() == []
    assert outsider.api().get("/api/v1/invoices").json() == []


def test_owner_starts_checkout_and_gets_the_hosted_url(owner, synced, sandbox, stripe_client):
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    response = owner.api().post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    session = stripe_client.v1.checkout.sessions.retrieve(body["id"])
    assert session.url == body["url"]
    assert session.mode == "subscription"
    assert session.metadata["account_id"] == str(owner.account.pk)
    line_items = stripe_client.v1.checkout.sessions.line_items.list(body["id"]).data
    assert [item.price.id for item in line_items] == [price.stripe_price_id]
    assert CheckoutAttempt.objects.get(account=owner.account).status == "open"


def test_double_submit_reuses_the_open_session_and_another_plan_replaces_it(owner, synced, stripe_client):
    pro = PlanPrice.objects.get(plan__code="pro", interval="month")
    basic = PlanPrice.objects.get(plan__code="basic", interval="month")
    api = owner.api()
    first = api.post("/api/v1/checkout-sessions", {"plan_price_id": pro.pk}, format="json").json()
    again = api.post("/api/v1/checkout-sessions", {"plan_price_id": pro.pk}, format="json").json()
    assert again["id"] == first["id"]
    other = api.post("/api/v1/checkout-sessions", {"plan_price_id": basic.pk}, format="json").json()
    assert other["id"] != first["id"]
    assert stripe_client.v1.checkout.sessions.retrieve(first["id"]).status == "expired"
    assert list(CheckoutAttempt.objects.order_by("pk").values_list("status", flat=True)) == ["expired", "open"]


def test_agent_cannot_start_checkout(agent, synced):
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    response = agent.api().post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json")
    assert response.status_code == 403
    assert CheckoutAttempt.objects.count() == 0


def test_admin_member_can_start_checkout(admin_member, synced):
    price = PlanPrice.objects.get(plan__code="basic", interval="year")
    response = admin_member.api().post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    "make_payload, field, code",
    [
        (lambda: {"plan_price_id": 999999}, "plan_price_id", "does_not_exist"),
        (lambda: {"plan_price_id": "pro"}, "plan_price_id", "incorrect_type"),
        (lambda: {}, "plan_price_id", "required"),
        (
            lambda: {"plan_price_id": PlanPrice.objects.get(plan__code="enterprise", interval="month").pk},
            "plan_price",
            "plan_unavailable",
        ),
        (
            lambda: {"plan_price_id": PlanPrice.objects.get(plan__code="pro", interval="month").pk, "coupon": "x"},
            "coupon",
            "unknown",
        ),
    ],
)
def test_bad_checkout_requests_are_refused_with_field_errors(owner, synced, make_payload, field, code):
    response = owner.api().post("/api/v1/checkout-sessions", make_payload(), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["fields"]
    assert error["code"] == code
    assert CheckoutAttempt.objects.count() == 0


def test_archived_price_is_refused(owner, synced):
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    PlanPrice.objects.filter(pk=price.pk).update(is_active=False)
    response = owner.api().post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "plan_unavailable"


def test_archived_plan_is_refused(owner, synced):
    Plan.objects.filter(code="pro").update(is_active=False)
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    response = owner.api().post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json")
    assert response.status_code == 400


def test_api_key_cannot_start_checkout(owner, synced):
    from accounts.services import api_key_create

    _key, raw = api_key_create(account=owner.account, actor=owner.user, name="machine")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    assert api.post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json").status_code == 403
    # ...but may read the subscription of its own account.
    assert api.get("/api/v1/subscription").json()["subscription"] is None


def test_pricing_page_is_public_with_a_monthly_annual_toggle(client, db):
    monthly = client.get("/pricing/").content.decode()
    assert "$99.00</strong> a month" in monthly
    assert "Enterprise" not in monthly
    annual = client.get("/pricing/?interval=year").content.decode()
    assert "$990.00</strong> a year" in annual
    assert "you save $198.00" in annual


def test_billing_page_is_for_owners_and_admins(client, owner, agent):
    assert owner.web(client).get("/billing/").status_code == 200
    client.logout()
    assert agent.web(client).get("/billing/").status_code == 403
