"""Every admin page registered so far renders; ops actions go through audited services."""

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import Account, AccountStatus, ApiKey, AuditLog
from accounts.services import account_provision, api_key_create
from tests.factories import MembershipFactory, UserFactory


def _admin_url(model, name, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{name}", args=args)


@pytest.fixture
def ops(client, staff_user):
    from django.contrib.auth.models import Group

    staff_user.groups.add(Group.objects.get_or_create(name="fraud")[0])  # fraud's pages are for this group only
    client.force_login(staff_user)
    return client


@pytest.fixture
def populated(db):
    """One row in each of our models, made the way the product makes them."""
    user = UserFactory(email="ada@adashop.example")
    account = account_provision(user=user, name="Ada's Shop", signup_ip="203.0.113.9", country="FR")
    Account.objects.filter(pk=account.pk).update(trusted_at=account.created_at)  # API keys need good standing
    account.refresh_from_db()
    api_key_create(account=account, actor=user, name="Shop backend")
    return account


def test_every_registered_changelist_renders(ops, populated):
    failures = []
    for model in admin.site._registry:
        response = ops.get(_admin_url(model, "changelist"))
        if response.status_code != 200:
            failures.append((model._meta.label, response.status_code))
    assert failures == []


@pytest.mark.parametrize("model", ["accounts.User", "accounts.Account", "accounts.ApiKey", "accounts.AuditLog"])
def test_change_view_of_each_tollbooth_model_renders(ops, populated, model):
    from django.apps import apps

    model_class = apps.get_model(model)
    obj = model_class.objects.first()
    response = ops.get(_admin_url(model_class, "change", obj.pk))
    assert response.status_code == 200


def test_account_page_shows_members_keys_and_audit(ops, populated):
    html = ops.get(_admin_url(Account, "change", populated.pk)).content.decode()
    assert "ada@adashop.example" in html
    assert "Shop backend" in html
    assert "account.provisioned" in html


def test_account_search_by_member_email_domain_and_id(ops, populated):
    MembershipFactory()  # another account that must not match
    by_domain = ops.get(_admin_url(Account, "changelist"), {"q": "@adashop.example"})
    assert by_domain.context["cl"].result_count == 1
    by_id = ops.get(_admin_url(Account, "changelist"), {"q": str(populated.pk)})
    assert populated in list(by_id.context["cl"].result_list)


def test_status_filter(ops, populated):
    response = ops.get(_admin_url(Account, "changelist"), {"status__exact": "suspended"})
    assert response.context["cl"].result_count == 0


def test_suspend_action_is_audited_with_the_staff_member(ops, populated, staff_user):
    ops.post(_admin_url(Account, "changelist"), {"action": "mark_suspended", "_selected_action": [populated.pk]})
    populated.refresh_from_db()
    assert populated.status == AccountStatus.SUSPENDED
    audit = AuditLog.objects.get(action="account.status_changed")
    assert (audit.actor, audit.before, audit.after) == (staff_user, {"status": "trialing"}, {"status": "suspended"})


def _management_forms(html: str) -> dict:
    """The inline formsets' management fields as the page renders them (whatever inlines other apps add)."""
    fields = re.findall(r'name="([\w-]+-(?:TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS)"[^>]*value="(\d+)"', html)
    return {name: "0" if name.endswith("TOTAL_FORMS") else value for name, value in fields}


def test_extending_a_trial_in_the_admin_is_audited(ops, populated, staff_user):
    url = _admin_url(Account, "change", populated.pk)
    page = ops.get(url).content.decode()
    response = ops.post(
        url,
        {
            **_management_forms(page),
            "name": populated.name,
            "country": "FR",
            "billing_email": populated.billing_email,
            "trial_ends_at_0": "2031-01-31",
            "trial_ends_at_1": "12:00:00",
        },
    )
    assert response.status_code == 302, response.context["errors"] if response.context else response
    populated.refresh_from_db()
    assert populated.trial_ends_at.year == 2031
    audit = AuditLog.objects.get(action="account.updated_by_staff")
    assert audit.actor == staff_user
    assert audit.after["trial_ends_at"].startswith("2031-01-31")


def test_revoke_action_on_keys(ops, populated):
    key = ApiKey.objects.get()
    ops.post(_admin_url(ApiKey, "changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_audit_log_is_read_only(ops, populated):
    entry = AuditLog.objects.first()
    assert ops.get(_admin_url(AuditLog, "add")).status_code == 403
    assert ops.post(_admin_url(AuditLog, "delete", entry.pk), {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_non_staff_cannot_open_the_admin(client, owner):
    client.force_login(owner.user)
    response = client.get(_admin_url(Account, "changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
