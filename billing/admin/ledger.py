"""Admin: ledger entries (re-push)."""

from __future__ import annotations

import stripe
from django.contrib import admin, messages

from accounts.admin import ReadOnlyInline
from accounts.errors import DomainError
from billing.ledger.push import ledger_entry_repush
from billing.models import (
    LedgerEntry,
)


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fields = ["kind", "state", "amount_cents", "currency", "stripe_invoice_item_id", "stripe_invoice_id"]
    show_change_link = True


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "account",
        "period",
        "kind",
        "state",
        "amount",
        "stripe_invoice_item_id",
        "stripe_invoice_id",
        "push_attempts",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["=account__id", "account__name", "stripe_invoice_item_id", "stripe_invoice_id"]
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]
    list_select_related = ["account", "period"]
    actions = ["repush"]

    @admin.display(description="Amount")
    def amount(self, entry):
        return f"{entry.amount_cents / 100:,.2f} {entry.currency.upper()}"

    @admin.action(description="Re-push selected stuck entries to Stripe (looks for an existing item first)")
    def repush(self, request, queryset):
        for entry in queryset:
            try:
                entry = ledger_entry_repush(entry=entry, actor=request.user)
            except DomainError as error:
                self.message_user(request, error.message, messages.WARNING)
            except stripe.StripeError as error:
                self.message_user(request, f"Entry {entry.pk}: Stripe refused: {error}", messages.ERROR)
            else:
                self.message_user(request, f"Entry {entry.pk} is {entry.get_state_display().lower()}.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
