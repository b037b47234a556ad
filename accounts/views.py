"""Server-rendered pages: onboarding, dashboard, API keys. Thin: forms check, services write."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.decorators import account_required, request_membership
from accounts.errors import DomainError
from accounts.forms import ApiKeyForm, OnboardingForm
from accounts.http import client_ip


def home(request):
    return redirect("dashboard" if request.user.is_authenticated else "account_login")


@login_required
@require_http_methods(["GET", "POST"])
def onboarding(request):
    if request_membership(request) is not None:
        return redirect("dashboard")
    form = OnboardingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.account_provision(
                user=request.user,
                name=form.cleaned_data["name"],
                signup_ip=request.user.signup_ip or client_ip(request),
                country=form.cleaned_data["country"],
            )
        except DomainError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            return redirect("dashboard")
    return render(request, "accounts/onboarding.html", {"form": form})


@account_required
def dashboard(request):
    account = request.account
    return render(
        request,
        "accounts/dashboard.html",
        {
            "account": account,
            "membership": request.membership,
            "trial_days_left": selectors.trial_days_left(account=account),
            "can_manage": request.membership.role in services.MANAGER_ROLES,
        },
    )


@account_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    account = request.account
    if request.membership.role not in services.MANAGER_ROLES:
        return render(
            request, "accounts/forbidden.html", {"reason": "Only owners and admins manage API keys."}, status=403
        )
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _api_key, new_key = services.api_key_create(
                account=account, actor=request.user, name=form.cleaned_data["name"]
            )
        except DomainError as error:
            form.add_error("name", error.message)
        else:
            form = ApiKeyForm()
    return render(
        request,
        "accounts/api_keys.html",
        {
            "form": form,
            "new_key": new_key,
            "keys": selectors.api_keys_for_account(account=account),
        },
    )


@account_required
@require_POST
def api_key_revoke(request, key_id: int):
    api_key = get_object_or_404(selectors.api_keys_for_account(account=request.account), pk=key_id)
    try:
        services.api_key_revoke(api_key=api_key, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Key “{api_key.name}” revoked.")
    return redirect("api_keys")
