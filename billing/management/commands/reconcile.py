from datetime import timedelta

from django.core.management.base import BaseCommand

from billing.reconciliation.record import run_counts_by_kind, run_summary_line
from billing.reconciliation.run import DEFAULT_WINDOW, reconciliation_run


class Command(BaseCommand):
    help = (
        "Compare Tollbooth's ledger, plan fees and subscriptions with Stripe; report differences by kind and "
        "heal what a re-sync from Stripe can (it never charges or re-pushes)."
    )

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
        self.stdout.write(run_summary_line(run=run))
        for count in run_counts_by_kind(run=run):
            self.stdout.write(f"  {count.kind}: {count.found} (healed: {count.healed}, unhealed: {count.unhealed})")
        for difference in run.differences.filter(healed=False):
            self.stdout.write(
                f"    {difference.kind}: account {difference.account_id or '-'} {difference.stripe_id or '-'} "
                f"expected {difference.expected or '-'}, actual {difference.actual or '-'}"
            )
