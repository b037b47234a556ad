"""Admin: ledger entries (failed pushes, re-push with a reason)."""

from __future__ import annotations

import stripe
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm

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


class RepushActionForm(ActionForm):
    # The re-push is a staff decision that can charge a customer: its reason goes to the audit log.
    reason = forms.CharField(required=False, max_length=500, label="Reason (required to re-push)")


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
        "next_push_at",
        "last_error",
    ]
    list_filter = ["state", "kind"]  # state "Failed": pushes that gave up, waiting for staff
    search_fields = ["=account__id", "account__name", "stripe_invoice_item_id", "stripe_invoice_id"]
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]
    list_select_related = ["account", "period"]
    actions = ["repush"]
    action_form = RepushActionForm

    @admin.display(description="Amount")
    def amount(self, entry):
        return f"{entry.amount_cents / 100:,.2f} {entry.currency.upper()}"

    @admin.action(description="Re-push selected entries to Stripe (failed, stuck, or lost at Stripe)")
    def repush(self, request, queryset):
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            self.message_user(request, "Give a reason to re-push: it is written to the audit log.", messages.ERROR)
            return
        for entry in queryset:
            try:
                entry = ledger_entry_repush(entry=entry, actor=request.user, reason=reason)
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
