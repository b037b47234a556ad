"""Each account gets exactly one Stripe customer, created by a task after provisioning."""

import uuid

import pytest
from djstripe import models as djstripe_models

from accounts.models import Account
from accounts.services import account_provision
from billing.stripe.customers import customer_ensure
from billing.stripe.objects import account_for_customer
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _customers(stripe_client, email):
    return stripe_client.v1.customers.list(params={"email": email, "limit": 10}).data


def test_provisioning_creates_one_stripe_customer_for_the_account(
    sandbox, stripe_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        account = account_provision(user=UserFactory(email="cust@shop.example"), name="Cust Shop", signup_ip=None)

    [customer] = _customers(stripe_client, "cust@shop.example")
    assert customer.name == "Cust Shop"
    assert customer.metadata["account_id"] == str(account.pk)
    assert customer.metadata["account_public_id"] == str(account.public_id)
    mirror = djstripe_models.Customer.objects.get(id=customer.id)
    assert mirror.subscriber == account


def test_retried_creation_makes_no_second_customer(sandbox, stripe_client, owner):
    first = customer_ensure(account=owner.account)
    # A retry that lost the mirror row (crash after Stripe answered) replays the same idempotent create.
    djstripe_models.Customer.objects.filter(pk=first.pk).delete()
    second = customer_ensure(account=owner.account)
    third = customer_ensure(account=owner.account)
    assert first.id == second.id == third.id
    assert len(_customers(stripe_client, owner.account.billing_email)) == 1


def test_another_database_on_the_same_stripe_account_gets_its_own_customer(sandbox, stripe_client, owner):
    """Staging, CI or a restored backup share the Stripe account and reuse primary keys for other merchants."""
    ours = customer_ensure(account=owner.account)
    # The same primary key in another database is another merchant: another public id, no mirror row.
    djstripe_models.Customer.objects.filter(pk=ours.pk).delete()
    Account.objects.filter(pk=owner.account.pk).update(public_id=uuid.uuid4())
    theirs = customer_ensure(account=Account.objects.get(pk=owner.account.pk))

    assert theirs.id != ours.id  # the create was not replayed from the other database's idempotency key
    assert stripe_client.v1.customers.retrieve(theirs.id).metadata["account_public_id"] == str(
        Account.objects.get(pk=owner.account.pk).public_id
    )
    # The other database's customer is a stranger here, although its metadata names our primary key.
    assert account_for_customer(ours.id) is None
    assert account_for_customer(theirs.id) == owner.account


def test_a_mirror_row_linked_by_primary_key_alone_does_not_make_a_strangers_customer_ours(sandbox, owner):
    ours = customer_ensure(account=owner.account)
    Account.objects.filter(pk=owner.account.pk).update(public_id=uuid.uuid4())
    # dj-stripe links a customer to the subscriber its `djstripe_subscriber` metadata names (a primary key).
    assert djstripe_models.Customer.objects.get(pk=ours.pk).subscriber_id == owner.account.pk
    assert account_for_customer(ours.id) is None


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_each_existing_account_its_own_public_id():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("accounts", "0003_risk_hold")], [("accounts", "0004_account_public_id")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("accounts", "Account")
        for n in range(3):
            old.objects.create(name=f"Shop {n}", slug=f"shop-{n}", billing_email=f"s{n}@shop.example")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        public_ids = set(
            executor.loader.project_state(after)
            .apps.get_model("accounts", "Account")
            .objects.values_list("public_id", flat=True)
        )
    finally:
        # Back to every app's latest migration, whatever came after this one: the tests after us need them.
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    assert len(public_ids) == 3 and None not in public_ids
