from django.core.management.base import BaseCommand

from billing.stripe.catalog import catalog_sync_to_stripe


class Command(BaseCommand):
    help = "Push the plans catalog to Stripe (products and prices), idempotently; dj-stripe mirrors the result."

    def handle(self, *args, **options):
        report = catalog_sync_to_stripe()
        for label, items in [
            ("products created", report.products_created),
            ("products updated", report.products_updated),
            ("prices created", report.prices_created),
            ("prices archived", report.prices_archived),
        ]:
            self.stdout.write(f"{label}: {len(items)}{(' (' + ', '.join(items) + ')') if items else ''}")
        self.stdout.write(f"prices unchanged: {report.unchanged}")
