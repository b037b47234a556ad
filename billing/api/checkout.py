"""API: start a Checkout Session."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import StrictSerializer, caller_account, require_person
from accounts.http import client_country, client_ip
from billing.subscriptions.checkout import checkout_start
from plans.models import PlanPrice


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
        attempt = checkout_start(
            account=account,
            actor=request.user,
            plan_price=payload.validated_data["plan_price_id"],
            ip=client_ip(request),
            ip_country=client_country(request),
        )
        return Response(CheckoutSessionOutput(attempt).data, status=status.HTTP_201_CREATED)
