"""Admin: usage periods and events."""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin, ReadOnlyInline
from billing.admin.ledger import LedgerEntryInline
from billing.models import (
    UsageEvent,
    UsagePeriod,
    UsageRollup,
)


class UsageRollupInline(ReadOnlyInline):
    model = UsageRollup
    fields = ["metric", "used", "updated_at"]


@admin.register(UsagePeriod)
class UsagePeriodAdmin(admin.ModelAdmin):
    """Usage per account and period: the rollups (what rating reads) and the ledger entry it produced."""

    list_display = ["account", "start", "end", "state", "plan_price", "trial", "used"]
    list_filter = ["state", "trial"]
    search_fields = ["=account__id", "account__name", "account__billing_email", "subscription_id"]
    date_hierarchy = "start"
    readonly_fields = [
        "account",
        "start",
        "end",
        "subscription_id",
        "plan_price",
        "trial",
        "terms",
        "state",
        "created_at",
        "rated_at",
    ]
    inlines = [UsageRollupInline, LedgerEntryInline]
    list_select_related = ["account", "plan_price__plan"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("rollups")

    @admin.display(description="Used")
    def used(self, period):
        return ", ".join(f"{rollup.metric} {rollup.used:,}" for rollup in period.rollups.all()) or "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "account_id", "metric", "quantity", "occurred_at", "idempotency_key"]
    search_fields = ["=account__id", "=idempotency_key"]
    readonly_fields = [f.name for f in UsageEvent._meta.fields]
    show_full_result_count = False  # a count(*) over millions of events on every page view is not worth it
