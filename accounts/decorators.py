"""Page guards. Pages get the caller's membership from here, never from an id in the URL."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from accounts.selectors import membership_current
from accounts.services import membership_is_manager

CURRENT_ACCOUNT_SESSION_KEY = "tollbooth_account_id"  # set when a user joins another account


def request_membership(request):
    """The logged-in user's current membership, looked up once per request."""
    if not hasattr(request, "_tollbooth_membership"):
        request._tollbooth_membership = membership_current(
            user=request.user, preferred_account_id=request.session.get(CURRENT_ACCOUNT_SESSION_KEY)
        )
    return request._tollbooth_membership


def account_required(view):
    """Logged in and inside an account; a user without one is sent to onboarding."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        membership = request_membership(request)
        if membership is None:
            return redirect("onboarding")
        request.membership = membership
        request.account = membership.account
        return view(request, *args, **kwargs)

    return wrapper


def manager_required(reason: str):
    """The account's owners and admins only; anyone else gets the 403 page saying `reason`. Goes under
    `account_required` (it reads `request.membership`)."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not membership_is_manager(request.membership):
                return render(request, "accounts/forbidden.html", {"reason": reason}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
