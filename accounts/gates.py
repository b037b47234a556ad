"""Feature gates built on the entitlements selector: a view decorator and a DRF permission class.

(The template tag is in templatetags/entitlements.py.) Each asks `request_entitlements`, so a request
computes its account's entitlements once however many gates it passes.
"""

from __future__ import annotations

from functools import wraps

from django.shortcuts import render
from rest_framework.permissions import BasePermission

from accounts.entitlements import request_entitlements


def feature_required(feature: str):
    """Page decorator (after `account_required`): the account's plan must include `feature`."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            entitlements = request_entitlements(request, request.account)
            if not entitlements.has(feature):
                return render(
                    request,
                    "accounts/feature_locked.html",
                    {"feature": feature, "entitlements": entitlements},
                    status=403,
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class HasFeature(BasePermission):
    """DRF permission: `permission_classes = [IsAuthenticated, HasFeature.of("automation")]`."""

    feature: str = ""
    message = "Your plan doesn't include this feature."
    code = "feature_not_in_plan"

    @classmethod
    def of(cls, feature: str) -> type[HasFeature]:
        return type(f"HasFeature_{feature}", (cls,), {"feature": feature})

    def has_permission(self, request, view) -> bool:
        from accounts.api import caller_account

        return request_entitlements(request, caller_account(request)).has(self.feature)


class ApiKeysNeedApiAccess(BasePermission):
    """Machine clients (API keys) work only while the account's plan includes API access."""

    message = "Your plan doesn't include API access."
    code = "feature_not_in_plan"

    def has_permission(self, request, view) -> bool:
        from accounts.authentication import ApiClient

        if not isinstance(request.user, ApiClient):
            return True
        return request_entitlements(request, request.user.account).has("api_access")
