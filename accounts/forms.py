from django import forms
from django_countries import countries

from accounts.services import ACCOUNT_NAME_MAX


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
