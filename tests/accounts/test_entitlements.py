"""Entitlements from the plan in force: trial plan, own plan, none while suspended; the three gates."""

import pytest
from rest_framework.test import APIClient

from accounts.entitlements import entitlements_for_account
from accounts.models import AccountStatus
from accounts.services import api_key_create
from plans.models import Plan


def _set(account, *, plan=None, status=None):
    if plan is not None:
        account.plan = Plan.objects.get(code=plan)
    if status is not None:
        account.status = status
    account.save()
    return account


def test_a_trial_without_a_plan_gets_the_trial_plans_entitlements(owner, settings):
    settings.TOLLBOOTH_TRIAL_PLAN = "pro"
    entitlements = entitlements_for_account(account=owner.account)
    assert entitlements.plan.code == "pro"
    assert entitlements.seat_limit == 15
    assert entitlements.has("automation") and entitlements.has("api_access") and not entitlements.has("voice")
    assert entitlements.metered["tickets"].included_units == 2000


def test_the_plan_in_force_decides(owner):
    _set(owner.account, plan="advanced", status=AccountStatus.ACTIVE)
    assert entitlements_for_account(account=owner.account).has("voice")
    _set(owner.account, plan="starter")
    entitlements = entitlements_for_account(account=owner.account)
    assert not entitlements.has("api_access") and entitlements.seat_limit == 2


@pytest.mark.parametrize("status", [AccountStatus.SUSPENDED, AccountStatus.BLOCKED])
def test_suspended_or_blocked_accounts_get_no_gated_feature(owner, status):
    _set(owner.account, plan="advanced", status=status)
    entitlements = entitlements_for_account(account=owner.account)
    assert entitlements.features == frozenset()
    assert entitlements.seat_limit == 40  # limits stay visible


def test_view_decorator_locks_the_api_keys_page_on_a_plan_without_api_access(client, owner):
    _set(owner.account, plan="starter", status=AccountStatus.ACTIVE)
    response = owner.web(client).get("/settings/api-keys/")
    assert response.status_code == 403
    assert "Starter plan" in response.content.decode()


def test_service_refuses_api_keys_without_api_access(owner):
    _set(owner.account, plan="starter", status=AccountStatus.ACTIVE)
    response = owner.api().post("/api/v1/api-keys", {"name": "k"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "feature_not_in_plan"


def test_drf_permission_stops_api_keys_after_a_downgrade(owner):
    _key, raw = api_key_create(account=owner.account, actor=owner.user, name="machine")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/account").status_code == 200
    _set(owner.account, plan="starter", status=AccountStatus.ACTIVE)
    response = client.get("/api/v1/account")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "feature_not_in_plan"


def test_template_tag_shows_what_the_plan_includes(client, owner):
    _set(owner.account, plan="basic", status=AccountStatus.ACTIVE)
    html = owner.web(client).get("/dashboard/").content.decode()
    assert "API access: <strong>included</strong>" in html
    assert 'Automation rules: <span class="muted">not included</span>' in html
