"""Admin: reconciliation runs, their report by kind, and their differences."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from accounts.admin import ReadOnlyInline
from billing.models import (
    ReconciliationDifference,
    ReconciliationRun,
)
from billing.reconciliation.record import run_counts_by_kind


class ReconciliationDifferenceInline(ReadOnlyInline):
    model = ReconciliationDifference
    fields = ["kind", "account", "stripe_id", "expected", "actual", "healed", "details"]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "accounts_checked",
        "invoices_checked",
        "differences_found",
        "differences_healed",
        "differences_unhealed",
    ]
    readonly_fields = [*(f.name for f in ReconciliationRun._meta.fields), "differences_unhealed", "by_kind"]
    inlines = [ReconciliationDifferenceInline]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Unhealed")
    def differences_unhealed(self, run):
        return run.differences_unhealed

    @admin.display(description="Differences by kind")
    def by_kind(self, run):
        counts = run_counts_by_kind(run=run)
        if not counts:
            return "none"
        return format_html_join(
            "",
            "<div>{}: {} found, {} healed, {} left for staff</div>",
            ((count.label, count.found, count.healed, count.unhealed) for count in counts),
        )


@admin.register(ReconciliationDifference)
class ReconciliationDifferenceAdmin(admin.ModelAdmin):
    """Every difference across runs, to work through what is left unhealed."""

    list_display = ["run", "kind", "account", "stripe_id", "expected", "actual", "healed"]
    list_filter = ["kind", "healed"]
    search_fields = ["stripe_id", "=account__id", "account__name"]
    readonly_fields = [f.name for f in ReconciliationDifference._meta.fields]
    list_select_related = ["run", "account"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
