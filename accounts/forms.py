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
