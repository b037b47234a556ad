"""One factory per model. Defaults make a valid, unremarkable row."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import Account, AccountStatus, Membership, Role, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@shop{n}.example")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Shop {n}")
    slug = factory.Sequence(lambda n: f"shop-{n}")
    status = AccountStatus.TRIALING
    country = "FR"
    billing_email = factory.Sequence(lambda n: f"billing{n}@shop{n}.example")
    trial_ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=14))
    # An unremarkable account is in good standing; fraud tests make new, untrusted ones explicitly.
    trusted_at = factory.LazyFunction(timezone.now)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = Role.AGENT
