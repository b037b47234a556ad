"""API: plan change preview and change, cancel, reactivate."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import StrictSerializer, caller_account, require_person
from billing.subscriptions import cancellation, changes
from billing.subscriptions.changes import subscription_change_preview
from plans.models import PlanPrice


class PreviewInput(StrictSerializer):
    plan_price_id = serializers.PrimaryKeyRelatedField(queryset=PlanPrice.objects.select_related("plan"))


class PreviewLineOutput(serializers.Serializer):
    description = serializers.CharField()
    amount_cents = serializers.IntegerField()
    proration = serializers.BooleanField()


class PreviewOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["upgrade", "downgrade"])
    plan = serializers.CharField(source="plan_price.plan.code")
    interval = serializers.CharField(source="plan_price.interval")
    currency = serializers.CharField()
    amount_due_now_cents = serializers.IntegerField(help_text="Charged at once on confirming (upgrades).")
    carried_forward_cents = serializers.IntegerField(
        help_text="Below Stripe's minimum charge, so not charged now: added to the next invoice."
    )
    effective_at = serializers.DateTimeField()
    next_invoice_cents = serializers.IntegerField(help_text="The plan's price on the following renewals.")
    lines = PreviewLineOutput(many=True)
    token = serializers.CharField(help_text="Send back to /subscription/change within 30 minutes.")


class ChangeInput(StrictSerializer):
    token = serializers.CharField()


class SubscriptionPreviewView(APIView):
    @extend_schema(
        operation_id="subscription_preview",
        summary="What a plan change would cost, before confirming it",
        request=PreviewInput,
        responses={200: PreviewOutput},
        examples=[OpenApiExample("Upgrade to Advanced", request_only=True, value={"plan_price_id": 7})],
    )
    def post(self, request):
        require_person(request)
        payload = PreviewInput(data=request.data)
        payload.is_valid(raise_exception=True)
        preview = subscription_change_preview(
            account=caller_account(request), actor=request.user, plan_price=payload.validated_data["plan_price_id"]
        )
        return Response(PreviewOutput(preview).data)


class SubscriptionChangeView(APIView):
    @extend_schema(
        operation_id="subscription_change",
        summary="Confirm a previewed plan change",
        request=ChangeInput,
        responses={200: dict},
    )
    def post(self, request):
        require_person(request)
        payload = ChangeInput(data=request.data)
        payload.is_valid(raise_exception=True)
        result = changes.subscription_change(
            account=caller_account(request), actor=request.user, token=payload.validated_data["token"]
        )
        if result["kind"] == "downgrade":
            change = result["scheduled"]
            return Response(
                {
                    "kind": "downgrade",
                    "plan": change.to_price.plan.code,
                    "interval": change.to_price.interval,
                    "effective_at": change.effective_at,
                }
            )
        return Response(result)


class SubscriptionCancelView(APIView):
    @extend_schema(
        operation_id="subscription_cancel",
        summary="End the subscription at the end of the period",
        request=None,
        responses={200: dict},
    )
    def post(self, request):
        require_person(request)
        return Response(cancellation.subscription_cancel(account=caller_account(request), actor=request.user))


class SubscriptionReactivateView(APIView):
    @extend_schema(
        operation_id="subscription_reactivate",
        summary="Undo a cancellation before the period ends",
        request=None,
        responses={200: dict},
    )
    def post(self, request):
        require_person(request)
        return Response(cancellation.subscription_reactivate(account=caller_account(request), actor=request.user))
