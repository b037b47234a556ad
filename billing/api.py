"""Billing API: the account's subscription, its invoices, and starting a checkout. Owners and admins only."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import StrictSerializer, caller_account, caller_membership, require_person
from accounts.services import MANAGER_ROLES
from billing import selectors, services
from plans.models import PlanPrice


def require_billing_access(request):
    """Billing is for owners and admins (and the account's own API keys may read it)."""
    membership = caller_membership(request)
    if membership is not None and membership.role not in MANAGER_ROLES:
        raise exceptions.PermissionDenied("Only the account's owners and admins see billing.", code="billing_only")


class SubscriptionOutput(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    plan = serializers.CharField(source="plan_price.plan.code", allow_null=True, default=None)
    plan_name = serializers.CharField(source="plan_price.plan.name", allow_null=True, default=None)
    interval = serializers.CharField(source="plan_price.interval", allow_null=True, default=None)
    amount_cents = serializers.IntegerField(source="plan_price.amount_cents", allow_null=True, default=None)
    currency = serializers.CharField(source="plan_price.currency", allow_null=True, default=None)
    quantity = serializers.IntegerField()
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    trial_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()


class SubscriptionEnvelope(serializers.Serializer):
    account_status = serializers.CharField()
    subscription = SubscriptionOutput(allow_null=True)


class SubscriptionView(APIView):
    @extend_schema(
        operation_id="subscription_retrieve",
        summary="The account's current subscription (or null)",
        responses={200: SubscriptionEnvelope},
    )
    def get(self, request):
        require_billing_access(request)
        account = caller_account(request)
        summary = selectors.subscription_summary(account=account)
        return Response(SubscriptionEnvelope({"account_status": account.status, "subscription": summary}).data)


class InvoiceOutput(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField(source="stripe_data.number", allow_null=True, default=None)
    status = serializers.CharField(source="stripe_data.status", allow_null=True, default=None)
    currency = serializers.CharField(source="stripe_data.currency")
    amount_due_cents = serializers.IntegerField(source="stripe_data.amount_due")
    amount_paid_cents = serializers.IntegerField(source="stripe_data.amount_paid")
    created = serializers.DateTimeField()
    hosted_invoice_url = serializers.CharField(source="stripe_data.hosted_invoice_url", allow_null=True, default=None)
    invoice_pdf = serializers.CharField(source="stripe_data.invoice_pdf", allow_null=True, default=None)


class InvoiceListView(APIView):
    @extend_schema(
        operation_id="invoices_list",
        summary="The account's invoices, newest first",
        responses={200: InvoiceOutput(many=True)},
    )
    def get(self, request):
        require_billing_access(request)
        account = caller_account(request)
        return Response(InvoiceOutput(selectors.invoices_for_account(account=account), many=True).data)


class CheckoutSessionInput(StrictSerializer):
    plan_price_id = serializers.PrimaryKeyRelatedField(
        queryset=PlanPrice.objects.select_related("plan"), help_text="A price id from GET /api/v1/plans."
    )


class CheckoutSessionOutput(serializers.Serializer):
    id = serializers.CharField(source="stripe_session_id")
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()


class CheckoutSessionCreateView(APIView):
    @extend_schema(
        operation_id="checkout_sessions_create",
        summary="Start Stripe Checkout for a plan; send the merchant to the returned URL",
        request=CheckoutSessionInput,
        responses={201: CheckoutSessionOutput},
        examples=[
            OpenApiExample("Choose Pro monthly", request_only=True, value={"plan_price_id": 5}),
            OpenApiExample(
                "Session",
                response_only=True,
                status_codes=["201"],
                value={
                    "id": "cs_test_a1b2",
                    "url": "https://checkout.stripe.com/c/pay/cs_test_a1b2",
                    "expires_at": "2026-11-24T10:30:00Z",
                },
            ),
        ],
    )
    def post(self, request):
        require_person(request)
        account = caller_account(request)
        payload = CheckoutSessionInput(data=request.data)
        payload.is_valid(raise_exception=True)
        attempt = services.checkout_start(
            account=account, actor=request.user, plan_price=payload.validated_data["plan_price_id"]
        )
        return Response(CheckoutSessionOutput(attempt).data, status=status.HTTP_201_CREATED)
