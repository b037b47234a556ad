"""Each account gets exactly one Stripe customer, created by a task after provisioning."""

import pytest
from djstripe import models as djstripe_models

from accounts.services import account_provision
from billing.stripe.customers import customer_ensure
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
