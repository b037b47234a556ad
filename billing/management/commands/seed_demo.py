"""`make run`'s demo: merchants with months of history, dunning and a fraud review (see billing/demo.py)."""

from django.core.management.base import BaseCommand

from billing.demo import demo_logins, demo_seed
from plans.demo_catalog import catalog_seed_demo


class Command(BaseCommand):
    help = "Seed the demo catalog, merchants (on Stripe test clocks) and ops login; idempotent, fast when done."

    def add_arguments(self, parser):
        parser.add_argument(
            "--catalog-only", action="store_true", help="Only the demo catalog, in the database (no Stripe)."
        )

    def handle(self, *args, catalog_only=False, **options):
        if catalog_only:
            catalog_seed_demo()
            self.stdout.write("demo catalog seeded")
            return
        report = demo_seed()
        if report.already:
            self.stdout.write(f"demo already seeded ({report.seconds:.2f} s)")
        else:
            self.stdout.write(f"demo seeded in {report.seconds:.1f} s: {', '.join(report.seeded) or 'nothing new'}")
        for who, email, password in demo_logins():
            self.stdout.write(f"  {who}: {email} / {password}")
