"""One place that writes a reconciliation difference, and the run's report read back from them."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from billing.models import DifferenceKind, ReconciliationDifference, ReconciliationRun


def difference_record(
    run: ReconciliationRun,
    account,
    kind: str,
    *,
    stripe_id: str = "",
    expected="",
    actual="",
    details: dict | None = None,
    healed: bool = False,
) -> ReconciliationDifference:
    return ReconciliationDifference.objects.create(
        run=run,
        account=account,
        kind=kind,
        stripe_id=stripe_id or "",
        expected=str(expected)[:120],
        actual=str(actual)[:120],
        details=details or {},
        healed=healed,
    )


@dataclass(frozen=True)
class KindCount:
    kind: str
    label: str
    found: int
    healed: int

    @property
    def unhealed(self) -> int:
        return self.found - self.healed


def run_counts_by_kind(*, run: ReconciliationRun) -> list[KindCount]:
    """Differences of one run by kind: how many found, how many healed (the rest wait for staff)."""
    rows = run.differences.values("kind").annotate(found=Count("id"), healed=Count("id", filter=Q(healed=True)))
    labels = dict(DifferenceKind.choices)
    return [
        KindCount(
            kind=row["kind"], label=labels.get(row["kind"], row["kind"]), found=row["found"], healed=row["healed"]
        )
        for row in rows.order_by("kind")
    ]


def run_summary_line(*, run: ReconciliationRun) -> str:
    return (
        f"accounts: {run.accounts_checked}, invoices: {run.invoices_checked}, "
        f"differences: {run.differences_found} (healed: {run.differences_healed}, "
        f"unhealed: {run.differences_found - run.differences_healed})"
    )
