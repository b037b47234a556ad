"""The demo's fraud side (`make run`): ops in the "fraud" group and one flagged signup in the review queue.

Called by `manage.py seed_fraud_demo` and by the demo seeder in billing (which may import fraud, not the
other way round).
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group
from django.db import transaction

from accounts.models import Account, AuditLog, User
from accounts.services import account_provision, audit_record
from fraud.rules import rules_seed_defaults
from fraud.services import assess_signup
from fraud.services.signup import signup_link_account

FLAGGED_EMAIL = "quick@farm-demo.tollbooth.test"
FLAGGED_PASSWORD = "tollbooth-flagged"
FLAGGED_ACCOUNT = "Quick Farm Demo"
# The audit row that says the flagged signup is complete; written in the transaction that creates it.
DEMO_SEEDED = "demo.seeded"
FLAGGED_MARKER = "demo:quick-farm"


def fraud_demo_ops_join(*, ops_email: str) -> None:
    """Put the ops user (if it exists) in the "fraud" group: only its members see the review queue."""
    group, _ = Group.objects.get_or_create(name="fraud")
    ops = User.objects.filter(email=ops_email).first()
    if ops is not None:
        ops.groups.add(group)


def fraud_demo_flagged_signup() -> tuple[Account, bool]:
    """The flagged signup, created once through the real signup check; returns (account, created)."""
    if AuditLog.objects.filter(action=DEMO_SEEDED, target=FLAGGED_MARKER).exists():
        return Account.objects.get(provisioned_by__email=FLAGGED_EMAIL), False
    rules_seed_defaults()
    with transaction.atomic():
        user = User.objects.filter(email=FLAGGED_EMAIL).first()
        if user is None:
            # The real check, as the signup form calls it: a form sent in half a second goes to review.
            verdict = assess_signup(email=FLAGGED_EMAIL, ip="192.0.2.44", device_id="demo-device", form_seconds=0.5)
            user = User.objects.create_user(
                email=FLAGGED_EMAIL, password=FLAGGED_PASSWORD, signup_risk_hold=verdict.hold
            )
            EmailAddress.objects.create(user=user, email=FLAGGED_EMAIL, verified=True, primary=True)
        # else: made by an earlier version of this seeder, which wrote no marker; it is complete.
        account = account_provision(user=user, name=FLAGGED_ACCOUNT, signup_ip="192.0.2.44", country="FR")
        signup_link_account(account=account)  # the signup's assessment becomes the account's
        audit_record(account=account, actor=None, action=DEMO_SEEDED, target=FLAGGED_MARKER)
    return account, True
