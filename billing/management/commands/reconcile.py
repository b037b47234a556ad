from datetime import timedelta

from django.core.management.base import BaseCommand

from billing.reconciliation.run import DEFAULT_WINDOW, reconciliation_run


class Command(BaseCommand):
    help = "Compare Tollbooth's ledger and plan fees with Stripe's invoices; report (and safely heal) drift."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=DEFAULT_WINDOW.days, help="Window of invoices to check.")

    def handle(self, *args, days: int, **options):
        def progress(done: int, total: int) -> None:
            width = 30
            filled = width * done // max(total, 1)
            self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} accounts", ending="")
            self.stdout.flush()

        run = reconciliation_run(window=timedelta(days=days), progress=progress)
        self.stdout.write("")
        self.stdout.write(
            f"accounts: {run.accounts_checked}, invoices: {run.invoices_checked}, "
            f"differences: {run.differences_found} (healed: {run.differences_healed})"
        )
        for difference in run.differences.all():
            self.stdout.write(
                f"  {difference.kind}: {difference.stripe_id} expected {difference.expected or '-'}, "
                f"actual {difference.actual or '-'}{' (healed)' if difference.healed else ''}"
            )
