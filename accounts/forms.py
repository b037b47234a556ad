import time

from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.core import context
from django import forms
from django.conf import settings
from django.core import signing
from django_countries import countries

from accounts.http import client_ip
from accounts.services import ACCOUNT_NAME_MAX

SIGNUP_STARTED_SALT = "tollbooth.signup.started"
# What a refused signup reads, whatever refused it: names no rule and says nothing about other accounts.
SIGNUP_REFUSED_MESSAGE = (
    "We could not create an account with these details. If you think this is a mistake, please write to support."
)


def signup_started_token(at: float | None = None) -> str:
    """The signed time the signup form was served: a bot posting at once (or without loading it) shows."""
    return signing.dumps(at if at is not None else time.time(), salt=SIGNUP_STARTED_SALT)


class SignupForm(AllauthSignupForm):
    """allauth's signup form plus a honeypot and the form's start time; fraud is asked once, in clean()."""

    # Hidden from people by CSS (not type=hidden, which bots skip); a value means a bot filled every field.
    website = forms.CharField(
        required=False,
        label="Leave this field empty",
        widget=forms.TextInput(
            attrs={"style": "position:absolute;left:-10000px;", "tabindex": "-1", "autocomplete": "off"}
        ),
    )
    started = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["started"].initial = signup_started_token()
        self.signup_risk_hold = False

    def _form_seconds(self) -> float | None:
        try:
            started = signing.loads(self.data.get("started") or "", salt=SIGNUP_STARTED_SALT, max_age=86400)
            return max(0.0, time.time() - float(started))
        except (signing.BadSignature, TypeError, ValueError):
            return None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned  # only a signup that would otherwise go through is scored (and counted)
        from fraud.services import assess_signup  # the one place accounts asks fraud

        request = context.request
        verdict = assess_signup(
            email=cleaned.get("email") or "",
            ip=client_ip(request) if request else None,
            device_id=request.COOKIES.get(settings.FRAUD_DEVICE_COOKIE) if request else None,
            honeypot=self.data.get("website") or "",
            form_seconds=self._form_seconds(),
        )
        if verdict.blocked:
            raise forms.ValidationError(SIGNUP_REFUSED_MESSAGE, code="refused")
        self.signup_risk_hold = verdict.hold
        return cleaned


class OnboardingForm(forms.Form):
    name = forms.CharField(
        label="Company name",
        max_length=ACCOUNT_NAME_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "organization", "autofocus": True}),
    )
    country = forms.ChoiceField(
        label="Country", choices=[("", "Choose your country"), *list(countries)], required=False
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Key name", max_length=100, help_text="What will use it, e.g. “Shop backend”.")


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=254)
    role = forms.ChoiceField(
        label="Role",
        choices=[("agent", "Agent"), ("admin", "Admin")],
        initial="agent",
        help_text="Admins manage the team and billing; agents use the helpdesk.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=[("agent", "Agent"), ("admin", "Admin")])


class AcceptInvitationForm(forms.Form):
    full_name = forms.CharField(label="Your name", max_length=150, required=False)
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(
        label="Password (again)", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args, email: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        from django.contrib.auth.password_validation import validate_password

        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "You must type the same password each time.")
        elif cleaned.get("password1"):
            from accounts.models import User

            try:
                validate_password(cleaned["password1"], user=User(email=self.email))
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned
