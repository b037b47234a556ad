"""GET /api/v1/plans: the public catalog, for the pricing page of the frontend."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from plans.models import Entitlement, Plan, PlanPrice
from plans.selectors import annual_saving_cents, plans_public


class PlanPriceOutput(serializers.ModelSerializer):
    class Meta:
        model = PlanPrice
        fields = ["id", "interval", "currency", "amount_cents"]


class EntitlementOutput(serializers.ModelSerializer):
    class Meta:
        model = Entitlement
        fields = ["feature", "kind", "limit", "included_units", "overage_cents", "unit_name"]


class PlanOutput(serializers.ModelSerializer):
    prices = PlanPriceOutput(many=True)
    entitlements = EntitlementOutput(many=True)
    annual_saving_cents = serializers.SerializerMethodField()

    class Meta:
        model = Plan
        fields = ["code", "name", "description", "rank", "prices", "entitlements", "annual_saving_cents"]

    def get_annual_saving_cents(self, plan) -> int | None:
        return annual_saving_cents(plan=plan)


class PlanListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="plans_list",
        summary="The plans a merchant can choose, smallest first",
        responses={200: PlanOutput(many=True)},
        examples=[
            OpenApiExample(
                "Catalog",
                response_only=True,
                value=[
                    {
                        "code": "pro",
                        "name": "Pro",
                        "description": "Growing shops.",
                        "rank": 30,
                        "prices": [
                            {"id": 5, "interval": "month", "currency": "usd", "amount_cents": 9900},
                            {"id": 6, "interval": "year", "currency": "usd", "amount_cents": 99000},
                        ],
                        "entitlements": [
                            {
                                "feature": "tickets",
                                "kind": "metered",
                                "limit": None,
                                "included_units": 2000,
                                "overage_cents": 20,
                                "unit_name": "ticket",
                            }
                        ],
                        "annual_saving_cents": 19800,
                    }
                ],
            )
        ],
    )
    def get(self, request):
        return Response(PlanOutput(plans_public(), many=True).data)
