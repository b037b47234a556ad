"""Admin: checkout attempts."""

from __future__ import annotations

from django.contrib import admin

from billing.models import (
    CheckoutAttempt,
)


@admin.register(CheckoutAttempt)
class CheckoutAttemptAdmin(admin.ModelAdmin):
    list_display = ["created_at", "account", "plan_price", "status", "stripe_session_id", "completed_at"]
    list_filter = ["status"]
    search_fields = ["account__name", "stripe_session_id", "=account__id"]
    readonly_fields = [
        "key",
        "account",
        "plan_price",
        "started_by",
        "status",
        "stripe_session_id",
        "url",
        "expires_at",
        "created_at",
        "completed_at",
    ]
    list_select_related = ["account", "plan_price__plan"]

    def has_add_permission(self, request):
        return False
