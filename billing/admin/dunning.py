"""Admin: dunning policy and cases."""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import ReadOnlyInline
from billing.models import (
    DunningCase,
    DunningNotice,
    DunningPolicy,
)


@admin.register(DunningPolicy)
class DunningPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "grace_days", "hard_decline_codes"]


class DunningCaseInline(ReadOnlyInline):
    model = DunningCase
    fields = [
        "stripe_invoice_id",
        "status",
        "opened_at",
        "failures",
        "last_decline_code",
        "hard_decline",
        "hard_declined_at",
        "suspended_at",
        "closed_at",
    ]
    verbose_name_plural = "dunning"


class DunningNoticeInline(ReadOnlyInline):
    model = DunningNotice
    fields = ["kind", "decline_code", "sent_at"]
    verbose_name_plural = "notices sent (once each)"


@admin.register(DunningCase)
class DunningCaseAdmin(admin.ModelAdmin):
    inlines = [DunningNoticeInline]
    list_display = ["opened_at", "account", "stripe_invoice_id", "status", "failures", "last_decline_code"]
    list_filter = ["status", "hard_decline"]
    search_fields = ["account__name", "stripe_invoice_id", "=account__id"]
    readonly_fields = [f.name for f in DunningCase._meta.fields]

    def has_add_permission(self, request):
        return False
