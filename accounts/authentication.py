"""DRF authentication by per-account API key: `Authorization: Bearer tb_<prefix>_<secret>`."""

from __future__ import annotations

from dataclasses import dataclass

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
