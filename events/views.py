"""The owner's page for webhooks: endpoints (add, enable/disable, roll the secret, remove) and recent events with
their deliveries (send again). Owners and admins only, scoped to the current account."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import account_required, manager_required
from accounts.errors import DomainError
from events import services
from outbox.catalogue import CATALOGUE

RECENT_EVENTS = 25


class EndpointForm(forms.Form):
    url = forms.URLField(max_length=500, label="Endpoint URL", assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(name, name) for name in sorted(CATALOGUE)],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Events to send",
        help_text="None ticked: every event.",
    )
    description = forms.CharField(max_length=200, required=False)


def _endpoint(account, endpoint_id: str):
    try:
        key = uuid.UUID(endpoint_id)
    except ValueError:
        raise Http404 from None
    endpoint = services.webhook_endpoints_for(account=account).filter(pk=key).first()
    if endpoint is None:
        raise Http404
    return endpoint


@account_required
@require_http_methods(["GET", "POST"])
@manager_required("Only owners and admins manage webhooks.")
def webhooks(request):
    account = request.account
    form = EndpointForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = services.webhook_endpoint_create(account=account, actor=request.user, **form.cleaned_data)
        except DomainError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            new_secret, form = endpoint.secret, EndpointForm()
    events = services.events_for(account=account).prefetch_related("deliveries__endpoint")[:RECENT_EVENTS]
    return render(
        request,
        "events/webhooks.html",
        {
            "form": form,
            "new_secret": new_secret,
            "endpoints": services.webhook_endpoints_for(account=account),
            "events": [
                (event, [d for d in event.deliveries.all() if d.endpoint_id and d.endpoint.account_id == account.pk])
                for event in events
            ],
        },
    )


@account_required
@require_POST
@manager_required("Only owners and admins manage webhooks.")
def webhook_endpoint_action(request, endpoint_id: str, action: str):
    account = request.account
    endpoint = _endpoint(account, endpoint_id)
    try:
        if action == "delete":
            services.webhook_endpoint_delete(endpoint=endpoint, account=account, actor=request.user)
            messages.success(request, f"{endpoint.url} removed.")
        elif action == "toggle":
            services.webhook_endpoint_update(
                endpoint=endpoint, account=account, actor=request.user, changes={"enabled": not endpoint.enabled}
            )
            messages.success(request, f"{endpoint.url} {'disabled' if endpoint.enabled else 'enabled'}.")
        elif action == "roll":
            endpoint = services.webhook_endpoint_update(
                endpoint=endpoint, account=account, actor=request.user, changes={"roll_secret": True}
            )
            messages.success(request, f"New signing secret for {endpoint.url}: {endpoint.secret} (shown once).")
        else:
            raise Http404
    except DomainError as error:
        messages.error(request, error.message)
    return redirect("webhooks")


@account_required
@require_POST
@manager_required("Only owners and admins manage webhooks.")
def event_redeliver(request, event_id: str):
    account = request.account
    try:
        event = services.events_for(account=account).filter(pk=uuid.UUID(event_id)).first()
    except ValueError:
        event = None
    if event is None:
        raise Http404
    queued = services.event_redeliver_for(event=event, account=account, actor=request.user)
    messages.success(request, f"{event.type} sent again to {queued} endpoint(s).")
    return redirect("webhooks")
