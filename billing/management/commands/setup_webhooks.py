from django.conf import settings
from django.core.management.base import BaseCommand

from billing.stripe.endpoints import webhook_endpoint_ensure


class Command(BaseCommand):
    help = "Register the Stripe webhook endpoint for this site (idempotent) and store its signing secret."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=None, help="Public base URL of this site (default: SITE_URL).")

    def handle(self, *args, base_url=None, **options):
        endpoint = webhook_endpoint_ensure(base_url=base_url or settings.SITE_URL)
        self.stdout.write(f"webhook endpoint {endpoint.id}: {endpoint.url}")
