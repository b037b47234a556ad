"""Admin: the catalog. Every edit is audited (who, before, after); a price Stripe has is not re-priced here.

Stripe prices are immutable and subscriptions keep the price they were sold at: changing the amount,
currency or interval of a synced price would rewrite terms already sold (and make our catalog disagree with
Stripe). A new price is added instead and the old one archived (is_active off).
"""

from django import forms
from django.contrib import admin

from plans.models import Entitlement, Plan, PlanPrice
from plans.services import catalog_edit_record, catalog_fields, catalog_row_before

PRICE_TERMS = ("interval", "currency", "amount_cents")


class _AuditedAdmin(admin.ModelAdmin):
    """Audit the edited row and the rows of its inlines, in the admin's transaction."""

    def save_model(self, request, obj, form, change):
        before = catalog_row_before(type(obj), obj.pk) if change else {}
        super().save_model(request, obj, form, change)
        catalog_edit_record(actor=request.user, model=type(obj), pk=obj.pk, before=before, after=catalog_fields(obj))

    def delete_model(self, request, obj):
        before, pk = catalog_fields(obj), obj.pk
        super().delete_model(request, obj)
        catalog_edit_record(actor=request.user, model=type(obj), pk=pk, before=before, after={})

    def save_formset(self, request, form, formset, change):
        befores = {id(f.instance): (f.instance.pk, catalog_row_before(formset.model, f.instance.pk)) for f in formset}
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects + [obj for obj, _fields in formset.changed_objects]:
            pk_before = befores.get(id(obj), (obj.pk, {}))
            catalog_edit_record(
                actor=request.user, model=formset.model, pk=obj.pk, before=pk_before[1], after=catalog_fields(obj)
            )
        for obj in formset.deleted_objects:
            pk, before = befores[id(obj)]
            catalog_edit_record(actor=request.user, model=formset.model, pk=pk, before=before, after={})


class PlanPriceForm(forms.ModelForm):
    class Meta:
        model = PlanPrice
        fields = ["interval", "currency", "amount_cents", "is_active"]

    def clean(self):
        cleaned = super().clean()
        changed = [field for field in PRICE_TERMS if field in self.changed_data]
        if self.instance.pk and self.instance.stripe_price_id and changed:
            raise forms.ValidationError(
                "This price is on Stripe and already sold: its amount, currency and interval stay. "
                "Add a new price and archive this one (untick active)."
            )
        return cleaned


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    form = PlanPriceForm
    extra = 0
    fields = ["interval", "currency", "amount_cents", "is_active", "stripe_price_id"]
    readonly_fields = ["stripe_price_id"]


class EntitlementInline(admin.TabularInline):
    model = Entitlement
    extra = 0
    fields = ["feature", "kind", "limit", "included_units", "overage_cents", "unit_name"]


@admin.register(Plan)
class PlanAdmin(_AuditedAdmin):
    list_display = ["name", "code", "rank", "is_public", "is_active"]
    list_filter = ["is_public", "is_active"]
    search_fields = ["name", "code"]
    inlines = [PlanPriceInline, EntitlementInline]


@admin.register(PlanPrice)
class PlanPriceAdmin(_AuditedAdmin):
    list_display = ["plan", "interval", "currency", "amount_cents", "is_active", "stripe_price_id"]
    list_filter = ["interval", "currency", "is_active"]
    search_fields = ["plan__name", "plan__code", "stripe_price_id"]
    form = PlanPriceForm

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.stripe_price_id:
            return ["stripe_price_id", *PRICE_TERMS]  # sold at Stripe: archive it and add a new price instead
        return ["stripe_price_id"]
