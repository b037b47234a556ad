"""Create the demo logins of `make run`: a merchant owner with a trialing account, and an ops user."""

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from accounts.services import account_provision

DEMO_OWNER = ("owner@demo.tollbooth.test", "tollbooth-demo")
DEMO_OPS = ("ops@demo.tollbooth.test", "tollbooth-ops")


class Command(BaseCommand):
    help = "Create the demo merchant and ops logins (idempotent)."

    def handle(self, *args, **options):
        with transaction.atomic():
            owner = self._user(*DEMO_OWNER)
            account_provision(user=owner, name="Demo Shop", signup_ip="127.0.0.1", country="FR")
            ops = self._user(*DEMO_OPS, is_staff=True, is_superuser=True)
        self.stdout.write(f"demo merchant: {owner.email} / {DEMO_OWNER[1]}")
        self.stdout.write(f"demo ops: {ops.email} / {DEMO_OPS[1]}")

    def _user(self, email: str, password: str, **flags) -> User:
        user, created = User.objects.get_or_create(email=email, defaults=flags)
        if created:
            user.set_password(password)
            user.save()
        EmailAddress.objects.get_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        return user
