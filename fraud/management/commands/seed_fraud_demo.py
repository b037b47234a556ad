"""For `make run`: put the demo ops user in the "fraud" group and leave one flagged signup in the review queue.

`manage.py seed_demo` does this too (with the rest of the demo); this name stays for callers of the old one.
"""

from django.core.management.base import BaseCommand

from fraud.demo import FLAGGED_EMAIL, FLAGGED_PASSWORD, fraud_demo_flagged_signup, fraud_demo_ops_join

DEMO_OPS_EMAIL = "ops@demo.tollbooth.test"


class Command(BaseCommand):
    help = "Give the demo ops user the fraud group and create one flagged signup to review (idempotent)."

    def handle(self, *args, **options):
        fraud_demo_ops_join(ops_email=DEMO_OPS_EMAIL)
        _account, created = fraud_demo_flagged_signup()
        state = "in the review queue" if created else "already in the review queue"
        self.stdout.write(f"flagged signup {state}: {FLAGGED_EMAIL} / {FLAGGED_PASSWORD}")
