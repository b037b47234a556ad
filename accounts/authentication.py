"""DRF authentication: per-account API keys, and the platform service token.

- API key: `Authorization: Bearer tb_<prefix>_<secret>`, a machine acting for one account.
- Platform token: `Authorization: Bearer <TOLLBOOTH_PLATFORM_TOKEN>`, the product's own backend reporting usage
  for any account. Only the usage-ingestion endpoint accepts it; the token acts for no account and reads nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.models import Account, ApiKey
from accounts.services import API_KEY_PREFIX, api_key_authenticate


@dataclass(frozen=True)
class ApiClient:
    """The caller behind an API key: a machine acting for one account, not a person."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    @property
    def account(self) -> Account:
        return self.api_key.account


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme != self.keyword or not raw_key.strip().startswith(API_KEY_PREFIX):
            # Not ours (e.g. another scheme): let the next authenticator look, or answer 401.
            if scheme == self.keyword:
                raise exceptions.AuthenticationFailed("Malformed API key.", code="invalid_api_key")
            return None
        api_key = api_key_authenticate(raw_key=raw_key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
        return ApiClient(api_key=api_key), api_key

    def authenticate_header(self, request):
        # A header here makes DRF answer 401 (not 403) to an unauthenticated request.
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes API keys in the OpenAPI schema, so the frontend's contract names both ways in."""

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "tb_<prefix>_<secret>"}


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
    target_class = "accounts.authentication.PlatformTokenAuthentication"
    name = "PlatformToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The platform service token (usage ingestion)."}
