"""Server-rendered pages: onboarding, dashboard, API keys. Thin: forms check, services write."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.decorators import CURRENT_ACCOUNT_SESSION_KEY, account_required, manager_required, request_membership
from accounts.entitlements import request_entitlements
from accounts.errors import DomainError
from accounts.forms import AcceptInvitationForm, ApiKeyForm, InviteForm, OnboardingForm, RoleForm
from accounts.gates import feature_required
from accounts.http import client_ip
from accounts.models import User
from plans.models import FEATURE_LABELS


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
            "can_manage": services.membership_is_manager(request.membership),
            "plan": request_entitlements(request, account).plan,
            "gated_features": GATED_FEATURES,
        },
    )


# The on/off features a plan may include, as merchants read them.
GATED_FEATURES = list(FEATURE_LABELS.items())


@account_required
@feature_required("api_access")
@require_http_methods(["GET", "POST"])
@manager_required("Only owners and admins manage API keys.")
def api_keys(request):
    account = request.account
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


# --- team ------------------------------------------------------------------------------------------------


@account_required
def team(request):
    account = request.account
    entitlements = request_entitlements(request, account)
    return render(
        request,
        "accounts/team.html",
        {
            "members": selectors.members_of(account=account),
            "invitations": selectors.invitations_pending(account=account),
            "form": InviteForm(),
            "can_manage": services.membership_is_manager(request.membership),
            "is_owner": request.membership.role == "owner",
            "seats_in_use": services.seats_in_use(account=account),
            "seat_limit": entitlements.seat_limit,
            "plan": entitlements.plan,
        },
    )


def _team_action(request, action, success: str):
    try:
        action()
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect("team")


@account_required
@require_POST
def team_invite(request):
    form = InviteForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("team")
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    return _team_action(
        request,
        lambda: services.invitation_create(account=request.account, actor=request.user, email=email, role=role),
        f"Invitation sent to {email}.",
    )


def _member(request, member_id: int):
    return get_object_or_404(selectors.members_of(account=request.account), pk=member_id)


def _invitation(request, invitation_id: int):
    return get_object_or_404(selectors.invitations_pending(account=request.account), pk=invitation_id)


@account_required
@require_POST
def team_member_role(request, member_id: int):
    membership = _member(request, member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose admin or agent.")
        return redirect("team")
    role = form.cleaned_data["role"]
    return _team_action(
        request,
        lambda: services.membership_change_role(membership=membership, actor=request.user, role=role),
        f"{membership.user.email} is now {role}.",
    )


@account_required
@require_POST
def team_member_deactivate(request, member_id: int):
    membership = _member(request, member_id)
    return _team_action(
        request,
        lambda: services.membership_deactivate(membership=membership, actor=request.user),
        f"{membership.user.email} no longer has access.",
    )


@account_required
@require_POST
def team_member_reactivate(request, member_id: int):
    membership = _member(request, member_id)
    return _team_action(
        request,
        lambda: services.membership_reactivate(membership=membership, actor=request.user),
        f"{membership.user.email} has access again.",
    )


@account_required
@require_POST
def team_member_transfer(request, member_id: int):
    membership = _member(request, member_id)
    return _team_action(
        request,
        lambda: services.ownership_transfer(account=request.account, actor=request.user, to=membership),
        f"{membership.user.email} now owns the account.",
    )


@account_required
@require_POST
def team_invitation_revoke(request, invitation_id: int):
    invitation = _invitation(request, invitation_id)
    return _team_action(
        request,
        lambda: services.invitation_revoke(invitation=invitation, actor=request.user),
        f"Invitation to {invitation.email} withdrawn.",
    )


@account_required
@require_POST
def team_invitation_resend(request, invitation_id: int):
    invitation = _invitation(request, invitation_id)
    return _team_action(
        request,
        lambda: services.invitation_resend(invitation=invitation, actor=request.user),
        f"Invitation sent again to {invitation.email}.",
    )


@require_http_methods(["GET", "POST"])
def invitation_accept(request, token: str):
    try:
        invitation = services.invitation_from_token(token)
    except DomainError as error:
        return render(request, "accounts/invitation.html", {"error": error.message}, status=error.status_code)
    existing_user = User.objects.filter(email__iexact=invitation.email).first()
    context = {"invitation": invitation, "existing_user": existing_user}
    if request.user.is_authenticated:
        if request.user.email.lower() != invitation.email.lower():
            context["wrong_user"] = True
            return render(request, "accounts/invitation.html", context, status=403)
        if request.method == "POST":
            try:
                membership = services.invitation_accept(invitation=invitation, user=request.user)
            except DomainError as error:
                return render(request, "accounts/invitation.html", {"error": error.message}, status=error.status_code)
            request.session[CURRENT_ACCOUNT_SESSION_KEY] = membership.account_id
            messages.success(request, f"Welcome to {membership.account.name}!")
            return redirect("dashboard")
        return render(request, "accounts/invitation.html", context)
    if existing_user is not None:
        return render(request, "accounts/invitation.html", context)  # offers "sign in to accept"
    form = AcceptInvitationForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.invitation_accept_as_new_user(
                invitation=invitation, password=form.cleaned_data["password1"], full_name=form.cleaned_data["full_name"]
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[CURRENT_ACCOUNT_SESSION_KEY] = invitation.account_id
            messages.success(request, f"Welcome to {invitation.account.name}!")
            return redirect("dashboard")
    context["form"] = form
    return render(request, "accounts/invitation.html", context)
