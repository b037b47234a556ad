from django.contrib import admin

from plans.models import Entitlement, Plan, PlanPrice


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    extra = 0
    fields = ["interval", "currency", "amount_cents", "is_active", "stripe_price_id"]
    readonly_fields = ["stripe_price_id"]


class EntitlementInline(admin.TabularInline):
    model = Entitlement
    extra = 0
    fields = ["feature", "kind", "limit", "included_units", "overage_cents", "unit_name"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "rank", "is_public", "is_active"]
    list_filter = ["is_public", "is_active"]
    search_fields = ["name", "code"]
    inlines = [PlanPriceInline, EntitlementInline]


@admin.register(PlanPrice)
class PlanPriceAdmin(admin.ModelAdmin):
    list_display = ["plan", "interval", "currency", "amount_cents", "is_active", "stripe_price_id"]
    list_filter = ["interval", "currency", "is_active"]
    search_fields = ["plan__name", "plan__code", "stripe_price_id"]
    readonly_fields = ["stripe_price_id"]
