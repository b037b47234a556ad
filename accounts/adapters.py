"""The seam between django-allauth and Tollbooth: translate, then hand over."""

from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse

from accounts.http import client_ip


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        # Remember where the signup came from: the account made at onboarding records it.
        user.signup_ip = client_ip(request)
        # Fraud sent the signup to review: the account this user provisions starts on hold.
        user.signup_risk_hold = getattr(form, "signup_risk_hold", False)
        return super().save_user(request, user, form, commit=commit)

    def get_login_redirect_url(self, request):
        return reverse("dashboard")
