"""Catalog edits in the admin are audited (who, before, after); a price already on Stripe is not re-priced."""

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from plans.models import Entitlement, Plan, PlanPrice


def _form_data(response) -> dict:
    """The change page's own data (main form and every inline), as the browser would post it unchanged."""
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
        forms.extend(formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            value = form.initial.get(name, field.initial)
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = value.pk if hasattr(value, "pk") else value
    return data


@pytest.fixture
def staff_client(client, staff_user, catalog):
    client.force_login(staff_user)
    return client


def _entitlement_row(response, feature):
    formset = next(i.formset for i in response.context["inline_admin_formsets"] if i.formset.model is Entitlement)
    [form] = [f for f in formset.forms if f.instance.feature == feature]
    return form.prefix


def test_an_entitlement_edited_in_the_plan_page_is_audited_with_who_before_and_after(staff_client, staff_user):
    plan = Plan.objects.get(code="pro")
    tickets = plan.entitlements.get(feature="tickets")
    url = reverse("admin:plans_plan_change", args=[plan.pk])
    page = staff_client.get(url)
    data = _form_data(page)
    prefix = _entitlement_row(page, "tickets")
    data[f"{prefix}-included_units"] = tickets.included_units + 500
    data["name"] = "Pro plus"

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    entry = AuditLog.objects.get(action="catalog.entitlement_changed")
    assert (entry.actor, entry.target) == (staff_user, f"entitlement:{tickets.pk}")
    assert (entry.before, entry.after) == (
        {"included_units": tickets.included_units},
        {"included_units": tickets.included_units + 500},
    )
    renamed = AuditLog.objects.get(action="catalog.plan_changed")
    assert (renamed.before, renamed.after) == ({"name": "Pro"}, {"name": "Pro plus"})
    assert AuditLog.objects.filter(action__startswith="catalog.").count() == 2  # untouched rows write nothing


def test_a_price_on_stripe_keeps_its_amount_and_archiving_it_is_audited(staff_client, staff_user):
    price = PlanPrice.objects.get(plan__code="pro", interval="month", currency="usd")
    PlanPrice.objects.filter(pk=price.pk).update(stripe_price_id="price_sold")
    url = reverse("admin:plans_plan_change", args=[price.plan_id])
    page = staff_client.get(url)
    data = _form_data(page)
    formset = next(i.formset for i in page.context["inline_admin_formsets"] if i.formset.model is PlanPrice)
    [row] = [f.prefix for f in formset.forms if f.instance.pk == price.pk]
    data[f"{row}-amount_cents"] = price.amount_cents + 1000

    refused = staff_client.post(url, data)

    assert refused.status_code == 200  # the form again, with the reason
    assert "already sold" in refused.content.decode()
    price.refresh_from_db()
    assert price.amount_cents == 9900
    assert not AuditLog.objects.filter(action__startswith="catalog.").exists()

    data[f"{row}-amount_cents"] = price.amount_cents
    del data[f"{row}-is_active"]  # archive it instead
    assert staff_client.post(url, data).status_code == 302
    entry = AuditLog.objects.get(action="catalog.planprice_changed")
    assert (entry.actor, entry.before, entry.after) == (staff_user, {"is_active": True}, {"is_active": False})
