"""REST API v1 for the caller and their account. Views stay thin: serializers check, services write."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django_countries import countries
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.authentication import ApiClient
from accounts.models import Account, ApiKey, Membership


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know, instead of silently dropping them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown}, code="unknown")
        return super().to_internal_value(data)


def caller_membership(request) -> Membership | None:
    if isinstance(request.user, ApiClient):
        return None
    return selectors.membership_current(user=request.user)


def caller_account(request) -> Account:
    """The account the caller acts for: the API key's, or the logged-in user's. Never from the request body."""
    if isinstance(request.user, ApiClient):
        return request.user.account
    account = selectors.account_for_user(user=request.user)
    if account is None:
        raise exceptions.NotFound("You do not belong to an account yet; finish onboarding first.", code="no_account")
    return account


def require_person(request):
    """Actions that change who can do what are taken by people, whose names go in the audit log."""
    if isinstance(request.user, ApiClient):
        raise exceptions.PermissionDenied("API keys cannot do this; sign in as an owner or admin.", code="person_only")


class AccountOutput(serializers.ModelSerializer):
    country = serializers.CharField(source="country.code", allow_blank=True)
    trial_days_left = serializers.SerializerMethodField()

    class Meta:
        model = Account
        fields = [
            "id",
            "name",
            "slug",
            "status",
            "country",
            "billing_email",
            "trial_ends_at",
            "trial_days_left",
            "created_at",
        ]

    def get_trial_days_left(self, account: Account) -> int | None:
        return selectors.trial_days_left(account=account)


class AccountUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=services.ACCOUNT_NAME_MAX, required=False)
    country = serializers.ChoiceField(choices=[("", ""), *list(countries)], required=False)
    billing_email = serializers.EmailField(max_length=254, required=False)


class UserOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    full_name = serializers.CharField()


class MeOutput(serializers.Serializer):
    auth = serializers.ChoiceField(choices=["session", "api_key"])
    user = UserOutput(allow_null=True)
    role = serializers.CharField(allow_null=True)
    account = AccountOutput(allow_null=True)


class MeView(APIView):
    @extend_schema(
        operation_id="me",
        summary="Who is calling, in which account and with which role",
        responses={200: MeOutput},
        examples=[
            OpenApiExample(
                "Owner",
                response_only=True,
                value={
                    "auth": "session",
                    "user": {"id": 1, "email": "ada@shop.example", "full_name": "Ada"},
                    "role": "owner",
                    "account": {
                        "id": 7,
                        "name": "Ada's Shop",
                        "slug": "adas-shop",
                        "status": "trialing",
                        "country": "FR",
                        "billing_email": "ada@shop.example",
                        "trial_ends_at": "2026-12-07T10:00:00Z",
                        "trial_days_left": 14,
                        "created_at": "2026-11-23T10:00:00Z",
                    },
                },
            )
        ],
    )
    def get(self, request):
        if isinstance(request.user, ApiClient):
            data = {"auth": "api_key", "user": None, "role": None, "account": request.user.account}
        else:
            membership = caller_membership(request)
            data = {
                "auth": "session",
                "user": request.user,
                "role": membership.role if membership else None,
                "account": membership.account if membership else None,
            }
        return Response(MeOutput(data).data)


class AccountView(APIView):
    @extend_schema(operation_id="account_retrieve", summary="The caller's account", responses={200: AccountOutput})
    def get(self, request):
        return Response(AccountOutput(caller_account(request)).data)

    @extend_schema(
        operation_id="account_update",
        summary="Change the account's name, country or billing email (owners and admins)",
        request=AccountUpdateInput,
        responses={200: AccountOutput, 400: OpenApiResponse(description="Field errors"), 403: None},
        examples=[OpenApiExample("Rename", request_only=True, value={"name": "Ada's Shop Ltd"})],
    )
    def patch(self, request):
        require_person(request)
        account = caller_account(request)
        payload = AccountUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        account = services.account_update(account=account, actor=request.user, changes=dict(payload.validated_data))
        return Response(AccountOutput(account).data)


class ApiKeyOutput(serializers.ModelSerializer):
    revoked = serializers.BooleanField(source="is_revoked")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked"]


class ApiKeyCreatedOutput(ApiKeyOutput):
    key = serializers.CharField(help_text="The secret, shown this once; Tollbooth keeps only its hash.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "key"]


class ApiKeyCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100)


class ApiKeyListView(APIView):
    @extend_schema(
        operation_id="api_keys_list", summary="The account's API keys", responses={200: ApiKeyOutput(many=True)}
    )
    def get(self, request):
        require_person(request)
        account = caller_account(request)
        services.require_manager(account=account, actor=request.user)
        return Response(ApiKeyOutput(selectors.api_keys_for_account(account=account), many=True).data)

    @extend_schema(
        operation_id="api_keys_create",
        summary="Issue an API key; the secret is returned once",
        request=ApiKeyCreateInput,
        responses={201: ApiKeyCreatedOutput},
    )
    def post(self, request):
        require_person(request)
        account = caller_account(request)
        payload = ApiKeyCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        api_key, plaintext = services.api_key_create(account=account, actor=request.user, **payload.validated_data)
        api_key.key = plaintext
        return Response(ApiKeyCreatedOutput(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    @extend_schema(operation_id="api_keys_revoke", summary="Revoke an API key", responses={200: ApiKeyOutput})
    def delete(self, request, key_id: int):
        require_person(request)
        account = caller_account(request)
        # Scoped lookup: another account's key id is simply not found.
        api_key = get_object_or_404(selectors.api_keys_for_account(account=account), pk=key_id)
        api_key = services.api_key_revoke(api_key=api_key, actor=request.user)
        return Response(ApiKeyOutput(api_key).data)
