"""For `make run`: put the demo ops user in the "fraud" group and leave one flagged signup in the review queue."""

from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from accounts.services import account_provision
from fraud.models import RiskAssessment
from fraud.rules import rules_seed_defaults
from fraud.services import assess_signup
from fraud.services.signup import signup_link_account

DEMO_OPS_EMAIL = "ops@demo.tollbooth.test"
FLAGGED = ("quick@farm-demo.tollbooth.test", "tollbooth-flagged")


class Command(BaseCommand):
    help = "Give the demo ops user the fraud group and create one flagged signup to review (idempotent)."

    def handle(self, *args, **options):
        rules_seed_defaults()
        group, _ = Group.objects.get_or_create(name="fraud")
        ops = User.objects.filter(email=DEMO_OPS_EMAIL).first()
        if ops is not None:
            ops.groups.add(group)
        email, password = FLAGGED
        if RiskAssessment.objects.filter(email=email).exists():
            self.stdout.write(f"flagged signup already in the review queue: {email}")
            return
        with transaction.atomic():
            # The real check, as the signup form calls it: a form sent in half a second goes to review.
            verdict = assess_signup(email=email, ip="192.0.2.44", device_id="demo-device", form_seconds=0.5)
            user = User.objects.create_user(email=email, password=password, signup_risk_hold=verdict.hold)
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
            RiskAssessment.objects.filter(pk=verdict.assessment_id).update(user=user)
            account = account_provision(user=user, name="Quick Farm Demo", signup_ip="192.0.2.44", country="FR")
            signup_link_account(account=account)
        self.stdout.write(f"flagged signup in the review queue: {email} / {password} ({verdict.decision})")
