"""Who may read billing through the API."""

from __future__ import annotations

from rest_framework import exceptions

from accounts.api import caller_membership
from accounts.services import membership_is_manager


def require_billing_access(request):
    """Billing is for owners and admins (and the account's own API keys may read it)."""
    membership = caller_membership(request)
    if membership is not None and not membership_is_manager(membership):
        raise exceptions.PermissionDenied("Only the account's owners and admins see billing.", code="billing_only")
