"""The platform service token: the product's own backend reporting usage for any account.

`Authorization: Bearer <TOLLBOOTH_PLATFORM_TOKEN>`. Only the usage-ingestion endpoint accepts it; the
token acts for no account and reads nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication


@dataclass(frozen=True)
class PlatformClient:
    """The caller behind the platform token: our product's backend, not a person or a merchant."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False


class PlatformTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        token = settings.TOLLBOOTH_PLATFORM_TOKEN
        if not token:
            return None
        scheme, _, presented = authentication.get_authorization_header(request).decode("latin-1").partition(" ")
        if scheme != self.keyword or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return None  # not the platform token: an API key, perhaps; the next authenticator decides
        return PlatformClient(), None

    def authenticate_header(self, request):
        return self.keyword


class PlatformTokenScheme(OpenApiAuthenticationExtension):
    target_class = "billing.authentication.PlatformTokenAuthentication"
    name = "PlatformToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The platform service token (usage ingestion)."}
