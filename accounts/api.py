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
from accounts.decorators import request_membership
from accounts.models import Account, ApiKey, Invitation, Membership


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
    return request_membership(request)


def caller_account(request) -> Account:
    """The account the caller acts for: the API key's, or the logged-in user's. Never from the request body."""
    if isinstance(request.user, ApiClient):
        return request.user.account
    membership = request_membership(request)
    account = membership.account if membership else None
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


# --- team ------------------------------------------------------------------------------------------------


class MemberOutput(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")
    joined_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "role", "is_active", "joined_at"]


class MemberRoleInput(StrictSerializer):
    role = serializers.ChoiceField(choices=["admin", "agent"])


class InvitationOutput(serializers.ModelSerializer):
    invited_by = serializers.EmailField(source="invited_by.email", allow_null=True, default=None)
    expired = serializers.BooleanField(source="is_expired")

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "invited_by", "created_at", "expires_at", "expired", "send_count"]


class InvitationCreateInput(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=["admin", "agent"], default="agent")


def _member_of_caller(request, member_id: int) -> Membership:
    # Scoped lookup: another account's membership id is simply not found.
    return get_object_or_404(selectors.members_of(account=caller_account(request)), pk=member_id)


def _invitation_of_caller(request, invitation_id: int) -> Invitation:
    return get_object_or_404(selectors.invitations_pending(account=caller_account(request)), pk=invitation_id)


def _require_team_manager(request) -> None:
    require_person(request)
    membership = caller_membership(request)
    if not services.membership_is_manager(membership):
        raise exceptions.PermissionDenied(
            "Only the account's owners and admins manage the team.", code="permission_denied"
        )


class MemberListView(APIView):
    @extend_schema(
        operation_id="members_list", summary="Members of the caller's account", responses={200: MemberOutput(many=True)}
    )
    def get(self, request):
        return Response(MemberOutput(selectors.members_of(account=caller_account(request)), many=True).data)


class MemberDetailView(APIView):
    @extend_schema(
        operation_id="members_update",
        summary="Change a member's role (admin or agent)",
        request=MemberRoleInput,
        responses={200: MemberOutput},
        examples=[OpenApiExample("Promote", request_only=True, value={"role": "admin"})],
    )
    def patch(self, request, member_id: int):
        require_person(request)
        membership = _member_of_caller(request, member_id)
        payload = MemberRoleInput(data=request.data)
        payload.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=membership, actor=request.user, role=payload.validated_data["role"]
        )
        return Response(MemberOutput(membership).data)


class MemberActionView(APIView):
    """POST /members/{id}/deactivate | reactivate | transfer-ownership."""

    action_name = ""

    @extend_schema(request=None, responses={200: MemberOutput})
    def post(self, request, member_id: int):
        require_person(request)
        membership = _member_of_caller(request, member_id)
        if self.action_name == "deactivate":
            membership = services.membership_deactivate(membership=membership, actor=request.user)
        elif self.action_name == "reactivate":
            membership = services.membership_reactivate(membership=membership, actor=request.user)
        else:
            membership = services.ownership_transfer(account=membership.account, actor=request.user, to=membership)
        return Response(MemberOutput(membership).data)


class InvitationListView(APIView):
    @extend_schema(
        operation_id="invitations_list",
        summary="Pending invitations (owners and admins)",
        responses={200: InvitationOutput(many=True)},
    )
    def get(self, request):
        _require_team_manager(request)
        return Response(
            InvitationOutput(selectors.invitations_pending(account=caller_account(request)), many=True).data
        )

    @extend_schema(
        operation_id="invitations_create",
        summary="Invite someone by email; the link is emailed",
        request=InvitationCreateInput,
        responses={201: InvitationOutput},
        examples=[
            OpenApiExample("Invite an agent", request_only=True, value={"email": "sam@shop.example", "role": "agent"})
        ],
    )
    def post(self, request):
        require_person(request)
        payload = InvitationCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            account=caller_account(request), actor=request.user, **payload.validated_data
        )
        return Response(InvitationOutput(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(APIView):
    @extend_schema(
        operation_id="invitations_revoke", summary="Withdraw a pending invitation", responses={200: InvitationOutput}
    )
    def delete(self, request, invitation_id: int):
        require_person(request)
        invitation = services.invitation_revoke(
            invitation=_invitation_of_caller(request, invitation_id), actor=request.user
        )
        return Response(InvitationOutput(invitation).data)


class InvitationResendView(APIView):
    @extend_schema(
        operation_id="invitations_resend",
        summary="Send a pending invitation again (rate-limited)",
        request=None,
        responses={200: InvitationOutput},
    )
    def post(self, request, invitation_id: int):
        require_person(request)
        invitation = services.invitation_resend(
            invitation=_invitation_of_caller(request, invitation_id), actor=request.user
        )
        return Response(InvitationOutput(invitation).data)
