"""API: the caller's subscription."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import caller_account
from billing.api.access import require_billing_access
from billing.subscriptions.selectors import subscription_summary


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
        summary = subscription_summary(account=account)
        return Response(SubscriptionEnvelope({"account_status": account.status, "subscription": summary}).data)
