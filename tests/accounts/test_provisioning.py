import threading

import pytest
from django.core import mail
from django.db import connection

from accounts.errors import DomainError
from accounts.models import Account, AccountStatus, AuditLog, Membership
from accounts.services import account_provision
from tests.factories import UserFactory


def test_provisioning_creates_account_owner_trial_and_audit_row(db, settings, django_capture_on_commit_callbacks):
    settings.TOLLBOOTH_TRIAL_DAYS = 14
    user = UserFactory(email="ada@adashop.example")

    with django_capture_on_commit_callbacks(execute=True):
        account = account_provision(user=user, name="  Ada's   Shop ", signup_ip="203.0.113.9", country="FR")

    account.refresh_from_db()
    assert account.name == "Ada's Shop"
    assert account.slug == "adas-shop"
    assert account.status == AccountStatus.TRIALING
    assert account.signup_ip == "203.0.113.9"
    assert account.country.code == "FR"
    assert account.billing_email == "ada@adashop.example"
    assert (account.trial_ends_at - account.created_at).days == 14
    assert Membership.objects.get(account=account).role == "owner"
    audit = AuditLog.objects.get(account=account)
    assert (audit.action, audit.actor, audit.after["status"]) == ("account.provisioned", user, "trialing")
    # The welcome email went out once, through the task, and the claim was recorded.
    assert [m.to for m in mail.outbox] == [["ada@adashop.example"]]
    assert "trial" in mail.outbox[0].body
    assert account.welcome_sent_at is not None


def test_second_submit_returns_the_same_account(db):
    user = UserFactory()
    first = account_provision(user=user, name="Ada's Shop", signup_ip=None)
    second = account_provision(user=user, name="Another name", signup_ip=None)
    assert first.pk == second.pk
    assert Account.objects.count() == 1
    assert Membership.objects.count() == 1
    assert AuditLog.objects.filter(action="account.provisioned").count() == 1


def test_same_company_name_gets_a_distinct_slug(db):
    first = account_provision(user=UserFactory(), name="Acme", signup_ip=None)
    second = account_provision(user=UserFactory(), name="Acme", signup_ip=None)
    assert first.slug == "acme"
    assert second.slug.startswith("acme-") and second.slug != first.slug


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_bad_name_is_refused_and_writes_nothing(db, name):
    with pytest.raises(DomainError) as refused:
        account_provision(user=UserFactory(), name=name, signup_ip=None)
    assert refused.value.field == "name"
    assert Account.objects.count() == 0
    assert Membership.objects.count() == 0
    assert AuditLog.objects.count() == 0


def test_provisioning_is_atomic_when_a_late_write_fails(db, monkeypatch):
    """A failure at the last write (the audit row) leaves no account and no membership behind."""

    def database_refuses(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(AuditLog.objects, "create", database_refuses)
    with pytest.raises(RuntimeError):
        account_provision(user=UserFactory(), name="Half Shop", signup_ip=None)
    assert Account.objects.count() == 0
    assert Membership.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submit_gives_one_account():
    user = UserFactory()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def submit():
        try:
            barrier.wait(timeout=5)
            results.append(account_provision(user=user, name="Race Shop", signup_ip=None).pk)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(results)) == 1
    assert Account.objects.count() == 1
    assert Membership.objects.filter(user=user).count() == 1
    assert AuditLog.objects.filter(action="account.provisioned").count() == 1
