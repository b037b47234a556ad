"""Admin: reconciliation runs and their differences."""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import ReadOnlyInline
from billing.models import (
    ReconciliationDifference,
    ReconciliationRun,
)


class ReconciliationDifferenceInline(ReadOnlyInline):
    model = ReconciliationDifference
    fields = ["kind", "account", "stripe_id", "expected", "actual", "healed", "details"]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "accounts_checked", "invoices_checked", "differences_found", "differences_healed"]
    readonly_fields = [f.name for f in ReconciliationRun._meta.fields]
    inlines = [ReconciliationDifferenceInline]

    def has_add_permission(self, request):
        return False
